//! The legacy SSE transport's `endpoint` event: the URL the gateway must POST its messages to.
//!
//! Owns: turning the event's URL (usually relative, with a session id in its query) into a
//! target on the stream's own server. Must never: accept an endpoint on another host, port or
//! scheme (every POST carries the configured headers, which may hold credentials), or a URL
//! whose bytes could break the request line.

use super::super::url::UpstreamUrl;

/// Where the messages go: the endpoint's path and query on the server `stream` was read from.
pub fn resolve_endpoint(stream: &UpstreamUrl, data: &str) -> Result<UpstreamUrl, String> {
    let data = data.trim();
    if data.is_empty() {
        return Err("the endpoint event is empty".into());
    }
    if data.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the endpoint URL holds spaces or control characters".into());
    }
    // The fragment is never sent.
    let data = data.split('#').next().unwrap_or(data);
    let reference = match split_scheme(data) {
        Some((scheme, rest)) => {
            if !scheme.eq_ignore_ascii_case(stream.scheme()) {
                return Err(format!(
                    "the endpoint uses {scheme}:// but the stream is {}://; refused",
                    stream.scheme()
                ));
            }
            Reference::Authority(rest)
        }
        None => match data.strip_prefix("//") {
            Some(rest) => Reference::Authority(rest),
            None => Reference::Relative(data),
        },
    };
    let path = match reference {
        Reference::Authority(rest) => {
            let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
            if !same_authority(authority, &stream.host, stream.default_port()) {
                return Err(
                    "the endpoint is on another host or port than the stream; refused".into(),
                );
            }
            match path.as_bytes().first() {
                None => "/".to_owned(),
                Some(b'?') => format!("/{path}"),
                Some(_) => path.to_owned(),
            }
        }
        Reference::Relative(r) if r.starts_with('/') => r.to_owned(),
        Reference::Relative(r) => {
            let base = stream.path.split('?').next().unwrap_or("/");
            if r.starts_with('?') {
                format!("{base}{r}")
            } else {
                let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{r}")
            }
        }
    };
    Ok(UpstreamUrl {
        addr: stream.addr,
        host: stream.host.clone(),
        path: without_dot_segments(&path),
        tls: stream.tls.clone(),
    })
}

enum Reference<'a> {
    /// After `scheme://` or `//`: authority, then path.
    Authority(&'a str),
    /// A path (absolute or relative to the stream's) with its query.
    Relative(&'a str),
}

/// `("http", "host/path")` for `http://host/path`; `None` when there is no scheme (a `:` in
/// a relative path's later segment or query is no scheme).
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let rest = url[colon + 1..].strip_prefix("//")?;
    valid.then_some((scheme, rest))
}

/// Host and port equal, ignoring the host's case and an explicit default port.
fn same_authority(a: &str, b: &str, default_port: u16) -> bool {
    let parts = |s: &str| -> Option<(String, u16)> {
        if s.contains('@') {
            return None;
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse().ok()?),
            _ => (s, default_port),
        };
        Some((host.to_ascii_lowercase(), port))
    };
    matches!((parts(a), parts(b)), (Some(x), Some(y)) if x == y)
}

/// The path with `.` and `..` segments resolved (RFC 3986 §5.2.4); the query is kept as is.
fn without_dot_segments(path: &str) -> String {
    let (path, query) = match path.find('?') {
        Some(i) => path.split_at(i),
        None => (path, ""),
    };
    if !path.split('/').any(|s| s == "." || s == "..") {
        return format!("{path}{query}");
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." if last => out.push(""),
            "." => {}
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}{query}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> UpstreamUrl {
        UpstreamUrl {
            addr: "127.0.0.1:3001".parse().expect("addr"),
            host: "LocalHost:3001".into(),
            path: "/mcp/sse?token=1".into(),
            tls: None,
        }
    }

    fn path_of(data: &str) -> Result<String, String> {
        resolve_endpoint(&stream(), data).map(|u| {
            assert_eq!((u.addr, u.host.as_str()), (stream().addr, "LocalHost:3001"));
            u.path
        })
    }

    #[test]
    fn relative_endpoints_resolve_against_the_stream_url() {
        assert_eq!(
            path_of("/message?sessionId=ab-1").unwrap(),
            "/message?sessionId=ab-1"
        );
        assert_eq!(
            path_of("messages/?session_id=9").unwrap(),
            "/mcp/messages/?session_id=9"
        );
        assert_eq!(path_of("?sessionId=2").unwrap(), "/mcp/sse?sessionId=2");
        assert_eq!(path_of("../post?a=b:c").unwrap(), "/post?a=b:c");
        assert_eq!(path_of("./x/./y#frag").unwrap(), "/mcp/x/y");
        assert_eq!(path_of(" /m?x=1\r\n").unwrap(), "/m?x=1");
    }

    #[test]
    fn absolute_endpoints_must_name_the_same_server() {
        assert_eq!(
            path_of("http://localhost:3001/message?sessionId=x").unwrap(),
            "/message?sessionId=x"
        );
        assert_eq!(path_of("HTTP://LOCALHOST:3001?s=1").unwrap(), "/?s=1");
        assert_eq!(path_of("//localhost:3001/m").unwrap(), "/m");
        for refused in [
            "http://evil.example:3001/message",
            "http://localhost:3002/message",
            "http://localhost/message",
            "//evil.example/m",
            "https://localhost:3001/message",
            "ftp://localhost:3001/message",
            "http://user@localhost:3001/message",
        ] {
            assert!(path_of(refused).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn endpoints_that_could_break_the_request_line_are_refused() {
        for refused in ["", "  ", "/a b", "/a\r\nX-Injected: 1", "/a\u{7f}"] {
            assert!(path_of(refused).is_err(), "{refused:?} was accepted");
        }
    }

    #[test]
    fn an_https_stream_keeps_its_endpoint_on_https() {
        let tls = crate::config::UpstreamTls {
            ca_file: None,
            insecure_skip_verify: true,
        };
        let config = crate::tls::upstream_config("mcpServers.a", &tls).expect("config");
        let stream =
            UpstreamUrl::resolve("https://localhost:3001/sse", Some(&config)).expect("stream url");
        let endpoint =
            resolve_endpoint(&stream, "https://localhost:3001/message?s=1").expect("endpoint");
        assert_eq!(endpoint.path, "/message?s=1");
        assert_eq!(endpoint.tls, stream.tls);
        assert_eq!(
            resolve_endpoint(&stream, "/m").expect("relative").tls,
            stream.tls
        );
        for refused in ["http://localhost:3001/message", "https://localhost/message"] {
            assert!(
                resolve_endpoint(&stream, refused).is_err(),
                "{refused} was accepted"
            );
        }
    }

    #[test]
    fn default_ports_compare_equal() {
        assert!(same_authority("example", "example:80", 80));
        assert!(same_authority("[::1]:80", "[::1]", 80));
        assert!(!same_authority("example:8080", "example", 80));
        assert!(same_authority("example:443", "example", 443));
        assert!(!same_authority("example:80", "example", 443));
    }
}
