//! The transport's header rules, each a pure function of the request head.

/// Whether a media-type list (an `Accept` value) admits `wanted` (`type/subtype`).
pub fn accepts(accept: Option<&[u8]>, wanted: &str) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    // The common case first: the wanted type opens the list.
    if accept.len() >= wanted.len()
        && accept[..wanted.len()].eq_ignore_ascii_case(wanted.as_bytes())
        && matches!(
            accept.get(wanted.len()),
            None | Some(b',' | b';' | b' ' | b'\t')
        )
    {
        return true;
    }
    let (wanted_type, _) = wanted.split_once('/').unwrap_or((wanted, ""));
    accept.split(|&b| b == b',').any(|item| {
        let range = item
            .split(|&b| b == b';')
            .next()
            .unwrap_or(item)
            .trim_ascii();
        range.eq_ignore_ascii_case(wanted.as_bytes())
            || range == b"*/*"
            || (range.len() == wanted_type.len() + 2
                && range.ends_with(b"/*")
                && range[..wanted_type.len()].eq_ignore_ascii_case(wanted_type.as_bytes()))
    })
}

/// Whether a `Content-Type` value is JSON (parameters such as charset allowed).
pub fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct.split(|&b| b == b';').next().unwrap_or(ct).trim_ascii();
    essence.eq_ignore_ascii_case(b"application/json")
}

/// Whether a browser `Origin` may use the gateway: listed ones always; loopback ones when
/// the gateway itself listens on loopback (DNS-rebinding protection for local use).
pub fn origin_allowed(origin: &[u8], allowed: &[String], loopback_listener: bool) -> bool {
    if allowed.iter().any(|a| a.as_bytes() == origin) {
        return true;
    }
    if !loopback_listener {
        return false;
    }
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_rules() {
        assert!(accepts(
            Some(b"application/json, text/event-stream"),
            "application/json"
        ));
        assert!(accepts(
            Some(b"text/event-stream;q=0.9, Application/JSON"),
            "application/json"
        ));
        assert!(accepts(Some(b"*/*"), "text/event-stream"));
        assert!(accepts(Some(b"application/*"), "application/json"));
        assert!(!accepts(Some(b"text/html"), "application/json"));
        assert!(!accepts(Some(b"application/jsonx"), "application/json"));
        assert!(!accepts(None, "application/json"));
    }

    #[test]
    fn content_type_rules() {
        assert!(is_json(Some(b"application/json; charset=utf-8")));
        assert!(!is_json(Some(b"text/plain")));
        assert!(!is_json(None));
    }

    #[test]
    fn origin_rules() {
        assert!(origin_allowed(b"http://localhost:3000", &[], true));
        assert!(origin_allowed(b"http://127.0.0.1", &[], true));
        assert!(origin_allowed(b"http://[::1]:8080", &[], true));
        assert!(!origin_allowed(b"http://evil.example", &[], true));
        assert!(!origin_allowed(b"http://localhost.evil.example", &[], true));
        assert!(!origin_allowed(b"http://localhost:3000", &[], false));
        assert!(origin_allowed(
            b"https://app.example",
            &["https://app.example".into()],
            false
        ));
    }
}
