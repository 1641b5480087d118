//! The parts of an upstream URL the gateway needs. Names are resolved here, on the control
//! thread, never on a worker core.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::tls::TlsTarget;

/// A parsed and resolved `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub addr: SocketAddr,
    /// Value for the `Host` header.
    pub host: String,
    /// Path and query, at least `/`.
    pub path: String,
    /// Set for `https://`: connections to this URL speak TLS.
    pub tls: Option<TlsTarget>,
}

impl UpstreamUrl {
    /// Parses and resolves; the error says what is wrong without echoing credentials.
    /// `tls` is the server's client config, needed (and used) for an `https://` URL only.
    pub fn resolve(
        url: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<UpstreamUrl, String> {
        let (rest, secure) = if let Some(r) = url.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("https://") {
            (r, true)
        } else {
            return Err("expected an http:// or https:// URL".into());
        };
        let default_port = if secure { 443 } else { 80 };
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
                None if after.is_empty() => default_port,
                None => return Err("invalid host".into()),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "invalid port")?),
                None => (authority, default_port),
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
        let tls = match (secure, tls) {
            (true, Some(config)) => Some(TlsTarget::new(config.clone(), host)?),
            (true, None) => return Err("https:// needs a TLS client config".into()),
            (false, _) => None,
        };
        Ok(UpstreamUrl {
            addr,
            host: authority.to_owned(),
            path,
            tls,
        })
    }

    /// `443` for `https://`, `80` for `http://`: the port an authority without one means.
    pub fn default_port(&self) -> u16 {
        if self.tls.is_some() {
            443
        } else {
            80
        }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamTls;

    fn resolve(url: &str) -> Result<UpstreamUrl, String> {
        UpstreamUrl::resolve(url, None)
    }

    #[test]
    fn parses_forms() {
        let u = resolve("http://127.0.0.1:3001/mcp").unwrap();
        assert_eq!(u.addr, "127.0.0.1:3001".parse().unwrap());
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("127.0.0.1:3001", "/mcp")
        );
        let u = resolve("http://[::1]:9/x?y=1").unwrap();
        assert_eq!(u.addr, "[::1]:9".parse().unwrap());
        assert_eq!(u.path, "/x?y=1");
        assert_eq!(resolve("http://127.0.0.1").unwrap().path, "/");
        assert_eq!(resolve("http://127.0.0.1?q").unwrap().path, "/?q");
    }

    #[test]
    fn https_urls_default_to_443_and_name_their_host() {
        let tls = UpstreamTls {
            ca_file: None,
            insecure_skip_verify: true,
        };
        let config = crate::tls::upstream_config("mcpServers.a", &tls).unwrap();
        let u = UpstreamUrl::resolve("https://127.0.0.1/mcp", Some(&config)).unwrap();
        assert_eq!(u.addr, "127.0.0.1:443".parse().unwrap());
        assert_eq!((u.scheme(), u.default_port()), ("https", 443));
        let u = UpstreamUrl::resolve("https://[::1]:8443/mcp", Some(&config)).unwrap();
        assert_eq!(u.addr, "[::1]:8443".parse().unwrap());
        assert!(u.tls.is_some());
        // A plain URL ignores a config it was given.
        let u = UpstreamUrl::resolve("http://127.0.0.1/", Some(&config)).unwrap();
        assert_eq!((u.scheme(), u.addr.port()), ("http", 80));
        assert!(resolve("https://127.0.0.1/").is_err());
    }

    #[test]
    fn refuses_bad_urls_without_echoing_secrets() {
        let e = resolve("http://user:hunter2@127.0.0.1/").unwrap_err();
        assert!(!e.contains("hunter2"));
        assert!(resolve("http://127.0.0.1:99999/").is_err());
        assert!(resolve("ftp://x").is_err());
    }
}
