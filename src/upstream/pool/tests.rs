//! The pool against a scripted server on real sockets, under both drivers: a connection the
//! server closed while idle is not reused, and a request the server read before closing is
//! not sent again.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;

use super::*;
use crate::runtime::{block_on, IoDriver};

/// Reads one request (head and Content-Length body) from `conn`; false when it closed first.
fn read_request(conn: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return true;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

const REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

/// The script: connection A answers one request and is closed while idle; B answers one,
/// then reads the next request and closes without a reply. Returns how many connections
/// came after B (a resend would be one).
fn script(listener: TcpListener, closed: mpsc::Sender<()>) -> usize {
    let (mut a, _) = listener.accept().expect("connection A");
    assert!(read_request(&mut a), "A's request");
    a.write_all(REPLY).expect("A's reply");
    drop(a);
    closed.send(()).expect("the client waits");
    let (mut b, _) = listener.accept().expect("connection B, A being closed");
    assert!(read_request(&mut b), "B's first request");
    b.write_all(REPLY).expect("B's reply");
    assert!(
        read_request(&mut b),
        "B's second request, on the pooled connection"
    );
    drop(b);
    listener.set_nonblocking(true).expect("nonblocking");
    std::iter::from_fn(|| listener.accept().ok()).count()
}

#[test]
fn closed_idle_connections_are_skipped_and_sent_requests_never_resent() {
    for driver in [IoDriver::Epoll, IoDriver::Uring] {
        if driver == IoDriver::Uring && !monoio::utils::detect_uring() {
            continue;
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (closed_tx, closed) = mpsc::channel();
        let server = std::thread::spawn(move || script(listener, closed_tx));
        // One runtime per thread (see `runtime::block_on`).
        let client = std::thread::spawn(move || {
            block_on(driver, || async move {
                let url = UpstreamUrl::resolve(&format!("http://127.0.0.1:{port}/mcp"), None)
                    .expect("url");
                let url = &url;
                let key = new_pool_key();
                let exchange = |key| async move {
                    let (mut conn, head) = post(key, url, &[], b"{}", Resend::Never).await?;
                    let mut body = Vec::new();
                    conn.read_body(&head, 1024, &mut body)
                        .await
                        .map_err(PostError::BadReply)?;
                    put(key, conn);
                    Ok::<_, PostError>(body)
                };
                assert_eq!(exchange(key).await.expect("on A"), b"{}");
                closed.recv().expect("A closed");
                // A sits in the pool, closed by the server: the check skips it.
                assert_eq!(exchange(key).await.expect("on B, not on A"), b"{}");
                let failed = exchange(key).await.expect_err("B closed without a reply");
                let text = failed.to_string();
                assert!(
                    text.contains("closed after the request was sent")
                        && text.contains("may have received"),
                    "{text}"
                );
                drop_idle_connections();
            })
            .expect("runtime")
        });
        client.join().expect("client thread");
        assert_eq!(
            server.join().expect("server thread"),
            0,
            "{driver:?}: the request was sent again"
        );
    }
}

#[test]
fn connections_idle_too_long_are_not_reused() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (_conn, _) = listener.accept().expect("connection");
        // Keep it open until the client is done.
        let mut rest = [0u8; 1];
        let _ = (&_conn).read(&mut rest);
    });
    std::thread::spawn(move || {
        block_on(IoDriver::Epoll, || async move {
            let url =
                UpstreamUrl::resolve(&format!("http://127.0.0.1:{port}/mcp"), None).expect("url");
            let key = new_pool_key();
            let conn = connect(&url).await.expect("connect");
            put(key, conn);
            POOLS.with(|p| {
                for idle in p.borrow_mut().values_mut().flatten() {
                    idle.since_ms -= IDLE_TIMEOUT_MS;
                }
            });
            assert!(take(key).is_none(), "a stale connection was reused");
            assert!(
                POOLS.with(|p| p.borrow().get(&key).is_none_or(Vec::is_empty)),
                "the stale connection is still pooled"
            );
            drop_idle_connections();
        })
        .expect("runtime")
    })
    .join()
    .expect("client thread");
    server.join().expect("server thread");
}
