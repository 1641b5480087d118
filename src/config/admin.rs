//! The `admin` block: where the admin API and `/metrics` listen, and the token they require.
//!
//! Owns: reading and checking the block, with errors that name the key path. Deny by default:
//! a listener off loopback must have a token. Must never: keep the token's value (it is hashed
//! here and dropped) or put it in an error.

use std::net::SocketAddr;

use serde::Deserialize;

use super::governance::MIN_KEY_LEN;
use super::ConfigError;
use crate::auth::keys::KeyHash;

/// Where the admin listener binds unless `admin.listen` says otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";

/// The admin listener's settings. The listener runs only when the config has an `admin` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The SHA-256 of the admin token; `None` (loopback only) lets anyone who can reach the
    /// listener in, except browsers.
    pub token: Option<KeyHash>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    listen: Option<String>,
    token: Option<String>,
}

/// Checks the `admin` block (already `${VAR}`-expanded).
pub(super) fn build(raw: Option<RawAdmin>) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        ConfigError::at(
            "admin.listen",
            "expected HOST:PORT with an IP address (e.g. 127.0.0.1:8081)",
        )
    })?;
    let token = match raw.token {
        Some(token) if token.chars().count() < MIN_KEY_LEN => {
            return Err(ConfigError::at(
                "admin.token",
                format!("expected a random secret of at least {MIN_KEY_LEN} characters"),
            ))
        }
        Some(token) => Some(KeyHash::of(token.as_bytes())),
        None => None,
    };
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(ConfigError::at(
            "admin.token",
            format!(
                "missing: admin.listen {listen} is not a loopback address, and an admin API \
                 reachable from other machines needs a token (deny by default); set \
                 admin.token, or listen on 127.0.0.1 or [::1]"
            ),
        ));
    }
    Ok(Some(AdminConfig { listen, token }))
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_config, Config, ConfigError};

    const SECRET: &str = "admin-secret-value-0123456789";

    fn parse(admin: &str) -> Result<Config, ConfigError> {
        let text = format!(r#"{{"admin": {admin}, "mcpServers": {{"a": {{"command": "x"}}}}}}"#);
        parse_config(&text, &|n| match n {
            "ADMIN_TOKEN" => Some(SECRET.to_owned()),
            "SHORT" => Some("short".to_owned()),
            _ => None,
        })
    }

    #[test]
    fn defaults_to_loopback_and_hashes_the_token() {
        let cfg = parse(r#"{"token": "${ADMIN_TOKEN}"}"#).unwrap();
        let admin = cfg.admin.unwrap();
        assert_eq!(admin.listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(
            admin.token,
            Some(crate::auth::keys::KeyHash::of(SECRET.as_bytes()))
        );
        assert!(!format!("{admin:?}").contains(SECRET));
        let none = parse_config(r#"{"mcpServers": {"a": {"command": "x"}}}"#, &|_| None).unwrap();
        assert!(none.admin.is_none(), "no admin block, no admin listener");
        let open = parse(r#"{"listen": "[::1]:9000"}"#).unwrap();
        assert_eq!(open.admin.unwrap().token, None);
    }

    #[test]
    fn off_loopback_without_a_token_is_refused() {
        let err = parse(r#"{"listen": "0.0.0.0:8081"}"#).unwrap_err();
        assert_eq!(err.path, "admin.token");
        assert!(err.message.contains("not a loopback address"), "{err}");
        let cfg = parse(r#"{"listen": "0.0.0.0:8081", "token": "${ADMIN_TOKEN}"}"#).unwrap();
        assert!(cfg.admin.unwrap().token.is_some());
    }

    #[test]
    fn errors_name_the_key_and_never_the_token() {
        let cases = [
            (r#"{"listen": "nowhere"}"#, "admin.listen"),
            (r#"{"token": "${SHORT}"}"#, "admin.token"),
            (r#"{"token": 5}"#, "admin.token"),
            (r#"{"token": "${UNSET_ADMIN_TOKEN}"}"#, "admin.token"),
            (r#"{"tokn": "${ADMIN_TOKEN}"}"#, "admin.tokn"),
            (r#""${ADMIN_TOKEN}""#, "admin"),
        ];
        for (admin, path) in cases {
            let err = parse(admin).unwrap_err();
            assert_eq!(err.path, path, "{admin} -> {err}");
            assert!(!err.to_string().contains(SECRET), "{err}");
            assert!(!err.to_string().contains("short"), "{err}");
        }
    }
}
