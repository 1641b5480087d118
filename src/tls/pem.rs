//! Reading PEM files: certificate chains, private keys and CA bundles. Every error names the
//! config key the path came from and the path. Must never: quote what a file holds.

use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

/// Reads a file whole; `key` is the config key that named it.
fn read(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::at(key, format!("cannot read {}: {e}", path.display())))
}

/// Every certificate in a PEM file, in order (a server's own certificate first, then its
/// intermediates; or a bundle of CAs). Other PEM sections (a key beside them) are skipped.
pub fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::at(
                key,
                format!("{} is not valid PEM: {}", path.display(), pem_problem(&e)),
            )
        })?;
    if certs.is_empty() {
        return Err(ConfigError::at(
            key,
            format!(
                "no certificate found in {} (expected PEM \"BEGIN CERTIFICATE\" sections)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => ConfigError::at(
            key,
            format!(
                "no private key found in {} (expected an unencrypted PEM \"PRIVATE KEY\", \
                 \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" section)",
                path.display()
            ),
        ),
        other => ConfigError::at(
            key,
            format!(
                "{} is not valid PEM: {}",
                path.display(),
                pem_problem(&other)
            ),
        ),
    })
}

/// What is wrong with a PEM file, without quoting any of it (base64 errors can name the
/// offending bytes, and in a key file those are key material).
fn pem_problem(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section's base64 does not decode",
        pem::Error::Io(_) => "it could not be read",
        pem::Error::NoItemsFound => "it holds nothing usable",
        _ => "it could not be parsed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in a directory of its own, removed on drop.
    struct Temp(std::path::PathBuf);

    impl Temp {
        fn new(name: &str, contents: &[u8]) -> Temp {
            let dir =
                std::env::temp_dir().join(format!("mcpgate-pem-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            Temp(path)
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn missing_files_are_named_with_their_key() {
        let err = certificates("tls.cert", Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert_eq!(err.path, "tls.cert");
        assert!(
            err.message.contains("cannot read /nonexistent/cert.pem"),
            "{err}"
        );
        assert!(err.message.contains("No such file"), "{err}");
    }

    #[test]
    fn files_without_the_wanted_item_say_so() {
        let file = Temp::new("empty.pem", b"just text\n");
        let path = &file.0;
        let err = certificates("mcpServers.a.ca_file", path).unwrap_err();
        assert_eq!(err.path, "mcpServers.a.ca_file");
        assert!(err.message.contains("no certificate found"), "{err}");
        let err = private_key("tls.key", path).unwrap_err();
        assert_eq!(err.path, "tls.key");
        assert!(err.message.contains("no private key found in"), "{err}");
    }

    #[test]
    fn broken_pem_is_reported_without_its_contents() {
        let secret = "c2VjcmV0!!!";
        let text = format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n");
        let file = Temp::new("broken-key.pem", text.as_bytes());
        let err = private_key("tls.key", &file.0).unwrap_err();
        assert!(err.message.contains("not valid PEM"), "{err}");
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!err.to_string().contains("c2Vj"), "{err}");
    }
}
