//! TLS to `https://` upstreams: one rustls client config per server, built at start on the
//! control thread, and the client side of the handshake on whichever core connects. Must
//! never: accept a certificate that fails verification unless the server's
//! `insecure_skip_verify` says so, or read a CA file anywhere but at start.
//!
//! Trust: a server with `ca_file` trusts exactly the CAs in that file (the system's roots are
//! not consulted, so a private CA cannot be undercut by a public one); any other server trusts
//! the system's roots (rustls-native-certs: the distribution's CA bundle, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`). No bundled root list is used as a fallback: a host without a CA bundle
//! fails that server's start with an error saying so, rather than trusting a list the operator
//! did not choose. The certificate must chain to a trusted root and name the URL's host (SNI
//! is sent for DNS names). `insecure_skip_verify` accepts any certificate, but still checks
//! that the server holds the key of the certificate it presents.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use monoio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use super::{pem, provider, ALPN_HTTP11};
use crate::config::{ConfigError, ServerConfig, Transport, UpstreamTls};

/// Longest an upstream may take to complete a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection to one `https://` upstream needs: its config and the name its
/// certificate must carry.
#[derive(Clone)]
pub struct TlsTarget {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsTarget {
    /// `host` as written in the URL (an IPv6 address without its brackets).
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<TlsTarget, String> {
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{host} is not a valid TLS server name"))?;
        Ok(TlsTarget {
            config,
            server_name,
        })
    }
}

impl fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTarget")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsTarget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl Eq for TlsTarget {}

/// The client configs of every server, in `servers` order: `Some` for each `https://` URL.
/// Reads CA files and the system's roots, so call it once at start, on the control thread.
/// Servers with `insecure_skip_verify` are named in a warning.
pub fn check_upstreams(
    servers: &[ServerConfig],
) -> Result<Vec<Option<Arc<ClientConfig>>>, ConfigError> {
    servers
        .iter()
        .map(|s| match &s.transport {
            Transport::Http { url, .. } | Transport::Sse { url, .. }
                if url.starts_with("https://") =>
            {
                if s.tls.insecure_skip_verify {
                    tracing::warn!(
                        server = %s.name,
                        "insecure_skip_verify is set: this server's TLS certificate is NOT verified; \
                         anyone on the network path can impersonate it"
                    );
                }
                upstream_config(&format!("mcpServers.{}", s.name), &s.tls).map(Some)
            }
            _ => Ok(None),
        })
        .collect()
}

/// One server's client config. `key` is the server's key path, for errors.
pub fn upstream_config(key: &str, tls: &UpstreamTls) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| ConfigError::at(key, e.to_string()))?;
    let mut config = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        let roots = match &tls.ca_file {
            Some(path) => {
                let ca_key = format!("{key}.ca_file");
                let mut roots = RootCertStore::empty();
                for (i, cert) in pem::certificates(&ca_key, path)?.into_iter().enumerate() {
                    roots.add(cert).map_err(|e| {
                        ConfigError::at(
                            &ca_key,
                            format!(
                                "certificate {} in {} is not a usable CA certificate: {e}",
                                i + 1,
                                path.display()
                            ),
                        )
                    })?;
                }
                Arc::new(roots)
            }
            None => system_roots().map_err(|e| ConfigError::at(key, e))?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The system's trusted roots, read once per process and shared by every server's config.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _unusable) = roots.add_parsable_certificates(found.certs);
            for e in &found.errors {
                tracing::debug!(error = %e, "while reading the system's CA certificates");
            }
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(String::new, |e| format!(" ({e})"));
                return Err(format!(
                    "no trusted CA certificates found on this system{why}; install the system \
                     CA bundle (e.g. the ca-certificates package), point SSL_CERT_FILE at one, \
                     or give this server a \"ca_file\""
                ));
            }
            tracing::debug!(roots = added, "loaded the system's CA certificates");
            Ok(Arc::new(roots))
        })
        .clone()
}

/// The client side of the handshake on a connected socket, at most [`HANDSHAKE_TIMEOUT`].
/// The error says what went wrong in words an operator can act on.
pub async fn handshake(
    tcp: TcpStream,
    target: &TlsTarget,
) -> Result<monoio_rustls::ClientTlsStream<TcpStream>, String> {
    let connector = monoio_rustls::TlsConnector::from(target.config.clone());
    let connecting = connector.connect(target.server_name.clone(), tcp);
    match monoio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(monoio_rustls::TlsError::Rustls(e))) => Err(describe(&e)),
        Ok(Err(monoio_rustls::TlsError::Io(e))) => Err(
            // A rustls error found while reading the server's messages comes wrapped in I/O.
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(e) => describe(e),
                None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    "the server closed the connection during the handshake".to_owned()
                }
                None => e.to_string(),
            },
        ),
        Err(_) => Err(format!(
            "no complete handshake within {} s",
            HANDSHAKE_TIMEOUT.as_secs()
        )),
    }
}

/// A rustls failure, with what it means for the operator in front of rustls's own words.
fn describe(e: &rustls::Error) -> String {
    let meaning = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the server's certificate is not trusted (it does not chain to a trusted CA; \
                 set \"ca_file\" to the CA that issued it)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for the host in the URL"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet"
            }
            CertificateError::Revoked => "the server's certificate has been revoked",
            _ => "the server's certificate was not accepted",
        },
        rustls::Error::InvalidMessage(_) => {
            "the server did not answer with TLS (is it plain http:// on that port?)"
        }
        rustls::Error::AlertReceived(_) => "the server refused the handshake",
        rustls::Error::NoApplicationProtocol => "the server does not offer HTTP/1.1",
        _ => return e.to_string(),
    };
    format!("{meaning}: {e}")
}

/// `insecure_skip_verify`: any certificate chain and name are accepted. The handshake's
/// signature is still checked against the presented certificate, so the server must at least
/// hold that certificate's key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_missing_ca_file_names_the_server_key() {
        let tls = UpstreamTls {
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            insecure_skip_verify: false,
        };
        let err = upstream_config("mcpServers.remote", &tls).unwrap_err();
        assert_eq!(err.path, "mcpServers.remote.ca_file");
        assert!(
            err.message.contains("cannot read /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn insecure_configs_need_no_roots() {
        let tls = UpstreamTls {
            ca_file: None,
            insecure_skip_verify: true,
        };
        let config = upstream_config("mcpServers.remote", &tls).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn certificate_failures_say_not_trusted() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = describe(&e);
        assert!(text.contains("certificate is not trusted"), "{text}");
        assert!(text.contains("UnknownIssuer"), "{text}");
    }
}
