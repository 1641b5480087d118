//! The client listener's TLS: its rustls config, the handshake after accept, and the
//! connection type the HTTP server reads and writes through.
//!
//! The handshake runs on the worker core that accepted the connection, bounded by
//! [`HANDSHAKE_TIMEOUT`] so a client that connects and says nothing cannot hold a task. A
//! failed handshake costs that one connection, nothing else. Must never: hold up the accept
//! loop with a handshake, or read a client's bytes from the hang-up watch.

use std::cell::OnceCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::ServerConfig;

use super::{pem, provider, ALPN_HTTP11};
use crate::config::{ConfigError, ListenerTls};
use crate::http::hang_up::HangUpWatch;

/// Longest a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the listener's certificate chain and key and builds its rustls config (TLS 1.2 and
/// 1.3, ALPN `http/1.1`). Errors name the config key (`tls.cert`, `tls.key`) and the path.
pub fn listener_config(tls: &ListenerTls) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs = pem::certificates("tls.cert", &tls.cert_path)?;
    let key = pem::private_key("tls.key", &tls.key_path)?;
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            ConfigError::at(
                "tls.key",
                format!(
                    "{} holds a private key that cannot be used: {e}",
                    tls.key_path.display()
                ),
            )
        })?;
    match rustls::sign::CertifiedKey::new(certs.clone(), signing_key).keys_match() {
        // `Unknown`: the key type cannot tell its public half; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(ConfigError::at(
                "tls.key",
                format!(
                    "the private key in {} does not match the certificate in {} (the first \
                     certificate of tls.cert must be the one issued for this key)",
                    tls.key_path.display(),
                    tls.cert_path.display()
                ),
            ))
        }
        Err(e) => {
            return Err(ConfigError::at(
                "tls.cert",
                format!(
                    "{} does not start with a usable certificate: {e}",
                    tls.cert_path.display()
                ),
            ))
        }
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| ConfigError::at("tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::at("tls", format!("cannot use this certificate and key: {e}")))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TLS on plain TCP connections; cheap to clone (one per worker, one per connection).
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: monoio_rustls::TlsAcceptor,
}

impl TlsAcceptor {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            inner: config.into(),
        }
    }

    /// Runs the server side of the handshake on `tcp`, at most [`HANDSHAKE_TIMEOUT`]. The
    /// error says why, for a debug log line.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsConn, String> {
        let fd = tcp.as_raw_fd();
        match monoio::time::timeout(HANDSHAKE_TIMEOUT, self.inner.accept(tcp)).await {
            Ok(Ok(tls)) => Ok(TlsConn {
                tls,
                fd,
                watch: OnceCell::new(),
            }),
            Ok(Err(e)) => Err(handshake_failure(e)),
            Err(_) => Err(format!(
                "no complete handshake within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            )),
        }
    }
}

fn handshake_failure(e: monoio_rustls::TlsError) -> String {
    match e {
        monoio_rustls::TlsError::Rustls(e) => e.to_string(),
        monoio_rustls::TlsError::Io(e) => e.to_string(),
    }
}

/// A client connection after its handshake.
pub struct TlsConn {
    tls: monoio_rustls::ServerTlsStream<TcpStream>,
    /// The socket under `tls` (which owns it and keeps it open as long as this lives).
    fd: RawFd,
    /// A second descriptor of the socket for the hang-up watch, made the first time a request
    /// runs long (most connections never need one) and kept: an SSE reply watches between
    /// every two events.
    watch: OnceCell<Option<TcpStream>>,
}

impl AsyncReadRent for TlsConn {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.tls.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.tls.readv(buf)
    }
}

impl AsyncWriteRent for TlsConn {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.tls.write(buf)
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.tls.writev(buf)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.tls.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        self.tls.shutdown()
    }
}

/// The first pause before looking again at a socket that has bytes waiting but no FIN yet.
const RECHECK_FIRST: Duration = Duration::from_millis(5);
/// The longest such pause.
const RECHECK_MAX: Duration = Duration::from_secs(1);

/// Peeking, as the plain-TCP watch does, would see TLS records: a client that hangs up
/// cleanly sends close_notify before its FIN, so "bytes waiting" cannot mean "still here".
/// The FIN itself is what counts, and `POLLRDHUP` reports it even with unread bytes ahead of
/// it. Waiting uses a second descriptor of the socket registered with this core's driver:
/// the first belongs to the TLS stream, and only readiness is wanted, never bytes.
impl HangUpWatch for TlsConn {
    async fn hung_up(&self) {
        let watch = self.watch.get_or_init(|| {
            watch_descriptor(self.fd)
                .inspect_err(
                    |e| tracing::debug!(error = %e, "cannot watch a TLS client for hanging up"),
                )
                .ok()
        });
        let Some(watch) = watch else {
            return std::future::pending().await;
        };
        let mut pause = RECHECK_FIRST;
        loop {
            if watch.readable(false).await.is_err() {
                return;
            }
            if peer_gone(self.fd) {
                return;
            }
            // Readable without a FIN: a record is waiting (a pipelined request, or the
            // close_notify whose FIN is still on its way). It stays readable until the
            // connection reads it, so look again after a pause rather than spin.
            monoio::time::sleep(pause).await;
            pause = (pause * 2).min(RECHECK_MAX);
        }
    }
}

/// A second descriptor for the socket `fd`, as a stream of this core's runtime.
fn watch_descriptor(fd: RawFd) -> io::Result<TcpStream> {
    // SAFETY: `fd` is an open socket for the duration of the call (the caller's `TlsConn`
    // owns it); F_DUPFD_CLOEXEC only reads it and returns a new descriptor or -1.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` was just created above and nothing else owns it; the std stream takes
    // ownership and closes it (through monoio) when dropped.
    let std_stream = unsafe { std::net::TcpStream::from_raw_fd(dup) };
    TcpStream::from_std(std_stream)
}

/// Whether the peer has sent its FIN (or the connection broke), looking without reading.
fn peer_gone(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd this frame owns; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        // EINTR and the like: not known to be gone; the caller looks again.
        return false;
    }
    n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// Blocks until `fd` reports one of `events` (a liveness bound, not a timing assertion).
    fn wait_for(fd: RawFd, events: libc::c_short) {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd owned by this frame.
        let n = unsafe { libc::poll(&mut pfd, 1, 60_000) };
        assert_eq!(n, 1, "no event {events:#x} on the socket");
    }

    #[test]
    fn a_fin_is_seen_behind_unread_bytes_and_bytes_alone_are_no_hang_up() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let fd = server.as_raw_fd();
        client
            .write_all(b"a TLS record, say a close_notify")
            .unwrap();
        wait_for(fd, libc::POLLIN);
        assert!(!peer_gone(fd), "unread bytes were taken for a hang-up");
        client.shutdown(std::net::Shutdown::Write).unwrap();
        wait_for(fd, libc::POLLRDHUP);
        assert!(peer_gone(fd), "the FIN behind unread bytes was missed");
    }

    struct Files(PathBuf);

    impl Files {
        fn new(tag: &str) -> Files {
            let dir =
                std::env::temp_dir().join(format!("mcpgate-tls-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Files(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap()
    }

    fn listener(cert: &Path, key: &Path) -> ListenerTls {
        ListenerTls {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
        }
    }

    #[test]
    fn a_matching_pair_builds_an_http11_config() {
        let files = Files::new("ok");
        let pair = self_signed();
        let cert = files.write("cert.pem", &pair.cert.pem());
        let key = files.write("key.pem", &pair.signing_key.serialize_pem());
        let config = listener_config(&listener(&cert, &key)).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn errors_name_the_key_and_never_the_key_material() {
        let files = Files::new("errors");
        let pair = self_signed();
        let other = self_signed();
        let key_pem = pair.signing_key.serialize_pem();
        let cert = files.write("cert.pem", &pair.cert.pem());
        let key = files.write("key.pem", &key_pem);
        let other_key = files.write("other-key.pem", &other.signing_key.serialize_pem());
        let missing = files.0.join("missing.pem");
        let key_body: String = key_pem.lines().nth(1).unwrap().to_owned();

        let err = listener_config(&listener(&missing, &key)).unwrap_err();
        assert_eq!(err.path, "tls.cert");
        assert!(err.message.contains("cannot read"), "{err}");
        assert!(err.message.contains("No such file"), "{err}");

        let err = listener_config(&listener(&cert, &missing)).unwrap_err();
        assert_eq!(err.path, "tls.key");

        // A key file holding only a certificate.
        let err = listener_config(&listener(&cert, &cert)).unwrap_err();
        assert_eq!(err.path, "tls.key");
        assert!(err.message.contains("no private key found in"), "{err}");

        // A certificate file holding only a key.
        let err = listener_config(&listener(&key, &key)).unwrap_err();
        assert_eq!(err.path, "tls.cert");
        assert!(!err.to_string().contains(&key_body), "{err}");

        let err = listener_config(&listener(&cert, &other_key)).unwrap_err();
        assert_eq!(err.path, "tls.key");
        assert!(
            err.message.contains("does not match the certificate"),
            "{err}"
        );
        assert!(!err.to_string().contains(&key_body), "{err}");
    }
}
