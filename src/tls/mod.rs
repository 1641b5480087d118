//! TLS on both sides of the gateway, with rustls on the `ring` provider: the client listener
//! (`"tls"` in the config) and `https://` upstreams.
//!
//! Owns: reading certificates, keys and CA files; building the rustls configs, once, on the
//! control thread (workers only clone an `Arc`); the accepted TLS connection the HTTP server
//! reads through, with its hang-up watch; and wording handshake failures so an operator can
//! act on them. Must never: put key material in an error or a log line, read a file or build
//! a config on a worker core, or skip certificate verification unless a server's
//! `insecure_skip_verify` says so.

pub mod client;
mod pem;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::{check_upstreams, upstream_config, TlsTarget};
pub use server::{listener_config, TlsAcceptor};

/// The one crypto provider every config is built with. Named explicitly rather than taken
/// from rustls's process default, which depends on which features other crates enabled.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The only protocol the gateway speaks over TLS, offered and accepted by ALPN.
const ALPN_HTTP11: &[u8] = b"http/1.1";
