//! `${VAR}` and `${VAR:-default}` references in config strings, resolved from the
//! gateway's environment when the config is loaded.

use super::ConfigError;

/// Expands every reference in `input`; `path` names the key for errors. A reference to an
/// unset variable without a default is an error (a silently empty token is worse).
pub fn expand_vars(
    input: &str,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    if !input.contains("${") {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(ConfigError::at(path, "unterminated ${...} reference"));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConfigError::at(
                path,
                format!("invalid variable name in ${{{inner}}}"),
            ));
        }
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(ConfigError::at(
                    path,
                    format!("environment variable {name} is not set"),
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_owned())
    }

    #[test]
    fn expands_and_defaults() {
        assert_eq!(
            expand_vars("Bearer ${TOKEN}", "p", &env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(
            expand_vars("${NOPE:-x}-${TOKEN}", "p", &env).unwrap(),
            "x-s3cret"
        );
        assert_eq!(
            expand_vars("plain $HOME", "p", &env).unwrap(),
            "plain $HOME"
        );
    }

    #[test]
    fn errors_name_the_key_and_variable() {
        let e = expand_vars("${MISSING}", "mcpServers.a.env.K", &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mcpServers.a.env.K: environment variable MISSING is not set"
        );
        assert!(expand_vars("${OOPS", "p", &env).is_err());
        assert!(expand_vars("${A B}", "p", &env).is_err());
    }
}
