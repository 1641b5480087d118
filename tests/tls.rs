//! TLS on both sides of the gateway, with certificates made for each test by `rcgen`: a test CA
//! that issued a certificate for `127.0.0.1`/`localhost`, and an unrelated CA nobody should
//! accept in its place.
//!
//! - The listener (`"tls"` in the config): the official Rust SDK (rmcp, on reqwest with rustls)
//!   trusting the test CA lists and calls tools over HTTPS; a client that does not trust it
//!   fails its handshake, a plain-HTTP client and a silent one get nothing, and the gateway
//!   keeps serving; a TLS client that hangs up mid-call cancels the call upstream.
//! - Upstreams: an MCP server on Node's own TLS (`tests/fixtures/https-server.mjs`, streamable
//!   HTTP and legacy SSE) is reached through `ca_file`; with the wrong CA the gateway still
//!   starts and a call names the server and says its certificate is not trusted;
//!   `insecure_skip_verify` gets through anyway.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::raw_http::build_request;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

/// Upper bound for a log line the test waits for.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// The files a test's TLS needs, in a temp dir.
struct Pki {
    /// PEM: the CA that issued `cert`.
    ca: PathBuf,
    /// PEM: a CA that issued nothing here.
    other_ca: PathBuf,
    /// PEM: the server certificate (for 127.0.0.1 and localhost), then the CA: a chain.
    cert: PathBuf,
    /// PEM: PKCS#8 key of `cert`.
    key: PathBuf,
    _dir: TempDir,
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

fn pki() -> Pki {
    let dir = TempDir::new("tls");
    let (ca_pem, issuer) = new_ca("mcpgate test CA");
    let (other_pem, _) = new_ca("an unrelated CA");
    let mut params =
        CertificateParams::new(vec!["localhost".to_string()]).expect("server cert params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "mcpgate test server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM file");
        path
    };
    Pki {
        ca: write("ca.pem", &ca_pem),
        other_ca: write("other-ca.pem", &other_pem),
        cert: write("cert.pem", &format!("{}{ca_pem}", cert.pem())),
        key: write("key.pem", &key.serialize_pem()),
        _dir: dir,
    }
}

/// A rustls client config (ring) trusting only the CAs in `trust`, offering HTTP/1.1.
fn client_tls(trust: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(trust).expect("read CA file") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The reqwest client rmcp talks through, trusting only the CAs in `trust`.
fn https_client(trust: &Path) -> reqwest_rmcp::Client {
    reqwest_rmcp::Client::builder()
        .tls_backend_preconfigured(client_tls(trust))
        .build()
        .expect("reqwest client")
}

/// rmcp over HTTPS, trusting the CAs in `trust`.
async fn connect_https(url: &str, trust: &Path) -> Client {
    let transport = StreamableHttpClientTransport::with_client(
        https_client(trust),
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    within(&format!("rmcp initialize with {url}"), ().serve(transport))
        .await
        .unwrap_or_else(|e| panic!("rmcp could not initialize with {url}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Raw TLS connections (blocking; run them off the async workers)
// ---------------------------------------------------------------------------------------------

/// A TLS client connection by hand, trusting `trust`, handshaken with `127.0.0.1` at `addr`.
/// `Err` carries the rustls error that ended the handshake.
fn tls_connect(
    addr: &str,
    trust: &Path,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, rustls::Error> {
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(CALL_TIMEOUT))
        .expect("read timeout");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut conn =
        rustls::ClientConnection::new(Arc::new(client_tls(trust)), name).expect("connection");
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let tls = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned();
            return Err(tls.unwrap_or_else(|| panic!("handshake I/O error: {e}")));
        }
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// Reads from `stream` until the peer closes it (or resets it); what arrived before.
fn read_to_close(stream: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the peer did not close the connection within {CALL_TIMEOUT:?}")
            }
            Err(_) => return got,
        }
    }
}

fn tls_gateway_config(pki: &Pki, servers: &[(&str, Value)]) -> Value {
    let mut cfg = config(servers);
    cfg["tls"] = json!({ "cert": pki.cert, "key": pki.key });
    cfg
}

/// The first line the gateway logs after `mark` that holds every one of `needles`.
fn wait_stderr(gw: &mut Gateway, mark: usize, needles: &[&str]) -> String {
    tokio::task::block_in_place(|| {
        gw.proc
            .wait_stderr_line_after(mark, |l| needles.iter().all(|n| l.contains(n)), WAIT)
    })
}

// ---------------------------------------------------------------------------------------------
// The listener
// ---------------------------------------------------------------------------------------------

both_drivers!(
    https_clients_list_and_call_tools,
    clients_that_do_not_trust_the_certificate_fail_and_the_gateway_keeps_serving,
    a_tls_client_hanging_up_mid_call_cancels_it_upstream,
);

async fn https_clients_list_and_call_tools(driver: &str) {
    let pki = pki();
    let gw = Gateway::start(
        driver,
        &tls_gateway_config(&pki, &[("mock", mock_stdio(&[]))]),
    )
    .await;
    assert!(gw.url.starts_with("https://"), "ready line says {}", gw.url);
    let client = connect_https(&gw.url, &pki.ca).await;
    let tools = names(&list_tools(&client).await);
    assert!(tools.contains(&"mock__echo".to_string()), "{tools:?}");
    let result = call_ok(&client, "mock__echo", json!({ "message": "over TLS" })).await;
    assert!(text_of(&result).contains("over TLS"), "{result:?}");
    let sum = call_ok(&client, "mock__add", json!({ "a": 40, "b": 2 })).await;
    assert!(text_of(&sum).contains("42"), "{sum:?}");
    close(client).await;
}

async fn clients_that_do_not_trust_the_certificate_fail_and_the_gateway_keeps_serving(
    driver: &str,
) {
    let pki = pki();
    let gw = Gateway::start(
        driver,
        &tls_gateway_config(&pki, &[("mock", mock_stdio(&[]))]),
    )
    .await;
    let addr = gw.addr();

    // A client that connects and never starts a handshake: the gateway gives up on it (after
    // its handshake bound) and closes the connection; meanwhile everyone else is served.
    let silent = std::net::TcpStream::connect(&addr).expect("connect");
    silent
        .set_read_timeout(Some(CALL_TIMEOUT))
        .expect("read timeout");
    let silent = tokio::task::spawn_blocking(move || {
        let mut silent = silent;
        read_to_close(&mut silent)
    });

    // A client that trusts another CA: its handshake fails on the certificate.
    let (a, other) = (addr.clone(), pki.other_ca.clone());
    let refused = tokio::task::spawn_blocking(move || tls_connect(&a, &other).err())
        .await
        .expect("handshake task");
    assert!(
        matches!(
            refused,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "a client trusting another CA got {refused:?}"
    );

    // So does rmcp trusting that other CA.
    let transport = StreamableHttpClientTransport::with_client(
        https_client(&pki.other_ca),
        StreamableHttpClientTransportConfig::with_uri(gw.url.as_str()),
    );
    let untrusted = within("rmcp initialize (untrusted)", ().serve(transport)).await;
    assert!(
        untrusted.is_err(),
        "rmcp initialized without trusting the certificate"
    );

    // Plain HTTP on the TLS port gets no HTTP reply: the listener serves only TLS.
    let a = addr.clone();
    let plain = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(&a).expect("connect");
        tcp.set_read_timeout(Some(CALL_TIMEOUT))
            .expect("read timeout");
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let request = build_request(
            "POST",
            "/mcp",
            &a,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            body,
        );
        let _ = tcp.write_all(&request);
        read_to_close(&mut tcp)
    })
    .await
    .expect("plain HTTP task");
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP reply: {:?}",
        String::from_utf8_lossy(&plain)
    );

    // And the next client that trusts the CA is served as usual.
    let client = connect_https(&gw.url, &pki.ca).await;
    let result = call_ok(&client, "mock__echo", json!({ "message": "still here" })).await;
    assert!(text_of(&result).contains("still here"), "{result:?}");
    close(client).await;

    let silent = silent.await.expect("silent client task");
    assert!(silent.is_empty(), "the silent client was sent {silent:?}");
}

async fn a_tls_client_hanging_up_mid_call_cancels_it_upstream(driver: &str) {
    let pki = pki();
    let mut gw = Gateway::start(
        driver,
        &tls_gateway_config(&pki, &[("mock", mock_stdio(&["--faults"]))]),
    )
    .await;
    // A session, opened over HTTPS.
    let http = https_client(&pki.ca);
    let post = |headers: Vec<(&'static str, String)>, body: Value| {
        let mut request = http
            .post(gw.url.as_str())
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        within("HTTPS POST", request.body(body.to_string()).send())
    };
    let init = post(
        Vec::new(),
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "tls-hang-up-test", "version": "0" }
            }
        }),
    )
    .await
    .expect("initialize");
    assert_eq!(init.status(), 200);
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("Mcp-Session-Id")
        .to_string();
    let session_headers = vec![
        ("Mcp-Session-Id", session.clone()),
        ("MCP-Protocol-Version", "2025-06-18".to_string()),
    ];
    let initialized = post(
        session_headers.clone(),
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    )
    .await
    .expect("notifications/initialized");
    assert_eq!(initialized.status(), 202);

    // A call that never ends, on a TLS connection made by hand.
    let body = json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "mock__fault_hang" }
    })
    .to_string();
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", "application/json, text/event-stream".to_string()),
    ];
    headers.extend(session_headers);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let request = build_request("POST", "/mcp", &gw.addr(), &headers, body.as_bytes());
    let mark = gw.proc.mark();
    let (addr, ca) = (gw.addr(), pki.ca.clone());
    let mut conn = tokio::task::spawn_blocking(move || {
        let mut conn = tls_connect(&addr, &ca).expect("handshake");
        conn.write_all(&request).expect("send the call");
        conn.flush().expect("flush");
        conn
    })
    .await
    .expect("call task");
    let line = wait_stderr(&mut gw, mark, &["hangs (fault_hang)"]);
    let id: u64 = line
        .split("mock-upstream: request ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no request id in {line:?}"));

    // The client leaves politely: close_notify, then FIN. The close_notify is bytes left
    // unread on the socket, which a watch that peeks would take for a client still there.
    let mark = gw.proc.mark();
    tokio::task::spawn_blocking(move || {
        conn.conn.send_close_notify();
        conn.conn
            .complete_io(&mut conn.sock)
            .expect("send close_notify");
        drop(conn);
    })
    .await
    .expect("close task");
    wait_stderr(
        &mut gw,
        mark,
        &[&format!("cancelled: {{\"requestId\":{id},")],
    );

    let client = connect_https(&gw.url, &pki.ca).await;
    call_ok(
        &client,
        "mock__echo",
        json!({ "message": "after the hang-up" }),
    )
    .await;
    close(client).await;
}

// ---------------------------------------------------------------------------------------------
// HTTPS upstreams
// ---------------------------------------------------------------------------------------------

/// `tests/fixtures/https-server.mjs` with the test's certificate; killed on drop.
struct HttpsFixture {
    _proc: Proc,
    /// `https://127.0.0.1:PORT`
    base: String,
}

impl HttpsFixture {
    async fn start(pki: &Pki) -> HttpsFixture {
        let mut cmd = std::process::Command::new("node");
        cmd.arg(repo_root().join("tests/fixtures/https-server.mjs"))
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key);
        let mut proc = Proc::spawn("https-server.mjs", cmd);
        let line = tokio::task::block_in_place(|| {
            proc.wait_stdout_line(|l| l.starts_with("listening on "), READY_TIMEOUT)
        });
        let base = line["listening on ".len()..].trim().to_string();
        HttpsFixture { _proc: proc, base }
    }
}

both_drivers!(
    https_upstreams_are_verified_against_their_ca_file,
    untrusted_upstream_certificates_fail_naming_the_server,
);

async fn https_upstreams_are_verified_against_their_ca_file(driver: &str) {
    let pki = pki();
    let fixture = HttpsFixture::start(&pki).await;
    let gw = Gateway::start(
        driver,
        &config(&[
            (
                "secure",
                json!({ "url": format!("{}/mcp", fixture.base), "ca_file": pki.ca }),
            ),
            (
                "secure_sse",
                json!({ "type": "sse", "url": format!("{}/sse", fixture.base), "ca_file": pki.ca }),
            ),
        ]),
    )
    .await;
    let client = gw.client().await;
    let tools = names(&list_tools(&client).await);
    for tool in ["secure__echo", "secure_sse__echo"] {
        assert!(
            tools.contains(&tool.to_string()),
            "{tool} missing: {tools:?}"
        );
        let message = format!("via {tool}");
        let result = call_ok(&client, tool, json!({ "message": message })).await;
        assert_eq!(text_of(&result), format!("secure echo: {message}"));
    }
    close(client).await;
}

async fn untrusted_upstream_certificates_fail_naming_the_server(driver: &str) {
    let pki = pki();
    let fixture = HttpsFixture::start(&pki).await;
    let url = format!("{}/mcp", fixture.base);
    let mut gw = Gateway::start(
        driver,
        &config(&[
            ("wrong_ca", json!({ "url": url, "ca_file": pki.other_ca })),
            (
                "wrong_ca_sse",
                json!({ "type": "sse", "url": format!("{}/sse", fixture.base), "ca_file": pki.other_ca }),
            ),
            ("unverified", json!({ "url": url, "insecure_skip_verify": true })),
            ("mock", mock_stdio(&[])),
        ]),
    )
    .await;
    // Start-up said which servers failed, and why; and which one is not verified.
    for server in ["server=wrong_ca error=", "server=wrong_ca_sse error="] {
        wait_stderr(
            &mut gw,
            0,
            &[server, "failed to start", "certificate is not trusted"],
        );
    }
    wait_stderr(
        &mut gw,
        0,
        &["server=unverified", "insecure_skip_verify is set"],
    );

    let client = gw.client().await;
    for tool in ["wrong_ca__echo", "wrong_ca_sse__echo"] {
        let server = tool.trim_end_matches("__echo");
        let error = mcp_error(
            tool,
            call(&client, tool, json!({ "message": "should not arrive" })).await,
        );
        let message = error.message.to_string();
        assert!(
            message.contains(&format!("'{server}'")),
            "{tool}: the error does not name the server: {message}"
        );
        assert!(
            message.contains("TLS handshake failed")
                && message.contains("certificate is not trusted"),
            "{tool}: the error does not say the certificate was not trusted: {message}"
        );
    }
    // The same server without verification answers.
    let result = call_ok(&client, "unverified__echo", json!({ "message": "anyway" })).await;
    assert_eq!(text_of(&result), "secure echo: anyway");
    gw.assert_echo_works("mock__echo").await;
    close(client).await;
}

// ---------------------------------------------------------------------------------------------
// Config errors
// ---------------------------------------------------------------------------------------------

/// `mcpgate check` (and `serve`) read the certificate files: problems name the key and file.
#[test]
fn check_names_tls_file_problems() {
    let pki = pki();
    let dir = TempDir::new("tls-check");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(
        &other_key,
        KeyPair::generate().expect("key").serialize_pem(),
    )
    .expect("write key");
    let missing = dir.path().join("missing.pem");
    let key_body = std::fs::read_to_string(&pki.key)
        .expect("key")
        .lines()
        .nth(1)
        .expect("a key line")
        .to_string();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "cert": missing, "key": pki.key }),
            "tls.cert: cannot read",
        ),
        (
            json!({ "cert": pki.cert, "key": pki.cert }),
            "tls.key: no private key found in",
        ),
        (
            json!({ "cert": pki.cert, "key": other_key }),
            "does not match the certificate",
        ),
    ];
    for (tls, expected) in cases {
        for command in ["check", "serve"] {
            let mut cfg = config(&[("mock", mock_stdio(&[]))]);
            cfg["tls"] = tls.clone();
            let path = dir.path().join("mcpgate.json");
            std::fs::write(&path, cfg.to_string()).expect("write config");
            let (ok, stderr) = run_to_exit(command, &path);
            assert!(!ok, "{command} accepted {tls}");
            assert!(
                stderr.contains(expected),
                "{command} with {tls}: expected {expected:?} in {stderr}"
            );
            assert!(
                !stderr.contains(&key_body),
                "{command} printed key material"
            );
        }
    }
    // An upstream's CA file is checked the same way.
    let cfg = config(&[(
        "remote",
        json!({ "url": "https://127.0.0.1:1/mcp", "ca_file": missing }),
    )]);
    let path = dir.path().join("upstream.json");
    std::fs::write(&path, cfg.to_string()).expect("write config");
    for command in ["check", "serve"] {
        let (ok, stderr) = run_to_exit(command, &path);
        assert!(!ok, "{command} accepted a missing ca_file");
        assert!(
            stderr.contains("mcpServers.remote.ca_file: cannot read"),
            "{command}: {stderr}"
        );
    }
}

/// Runs `mcpgate <command> --config <path>` (`serve` on a free port) until it exits, which a
/// refused config makes it do at once; whether it succeeded, and its stderr. A `serve` that
/// does not exit within `CALL_TIMEOUT` is killed and fails the test.
fn run_to_exit(command: &str, path: &Path) -> (bool, String) {
    let mut cmd = std::process::Command::new(mcpgate_bin());
    cmd.args([command, "--config"]).arg(path);
    if command == "serve" {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mcpgate");
    let mut stderr = child.stderr.take().expect("stderr pipe");
    // stderr reaches its end when the process exits.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let Ok(text) = rx.recv_timeout(CALL_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("mcpgate {command} did not exit: it accepted the config");
    };
    let status = child.wait().expect("wait for mcpgate");
    (status.success(), text)
}
