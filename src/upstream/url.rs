//! The parts of an upstream URL the gateway needs. Names are resolved here, on the control
//! thread, never on a worker core.

use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed and resolved `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub addr: SocketAddr,
    /// Value for the `Host` header.
    pub host: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl UpstreamUrl {
    /// Parses and resolves; the error says what is wrong without echoing credentials.
    pub fn resolve(url: &str) -> Result<UpstreamUrl, String> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err("https:// upstreams are not supported by this build yet (TLS comes with the governance work)".into());
        } else {
            return Err("expected an http:// URL".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported; use \"headers\"".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unterminated [IPv6] host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| "invalid port")?,
                None if after.is_empty() => 80,
                None => return Err("invalid host".into()),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "invalid port")?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return Err("missing host".into());
        }
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolved to no address"))?;
        Ok(UpstreamUrl {
            addr,
            host: authority.to_owned(),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let u = UpstreamUrl::resolve("http://127.0.0.1:3001/mcp").unwrap();
        assert_eq!(u.addr, "127.0.0.1:3001".parse().unwrap());
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("127.0.0.1:3001", "/mcp")
        );
        let u = UpstreamUrl::resolve("http://[::1]:9/x?y=1").unwrap();
        assert_eq!(u.addr, "[::1]:9".parse().unwrap());
        assert_eq!(u.path, "/x?y=1");
        assert_eq!(UpstreamUrl::resolve("http://127.0.0.1").unwrap().path, "/");
        assert_eq!(
            UpstreamUrl::resolve("http://127.0.0.1?q").unwrap().path,
            "/?q"
        );
    }

    #[test]
    fn refuses_bad_urls_without_echoing_secrets() {
        assert!(UpstreamUrl::resolve("https://x/")
            .unwrap_err()
            .contains("https"));
        let e = UpstreamUrl::resolve("http://user:hunter2@127.0.0.1/").unwrap_err();
        assert!(!e.contains("hunter2"));
        assert!(UpstreamUrl::resolve("http://127.0.0.1:99999/").is_err());
        assert!(UpstreamUrl::resolve("ftp://x").is_err());
    }
}
