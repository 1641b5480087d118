//! `mcpgate-load run` against the reference server `@modelcontextprotocol/server-everything`
//! in streamable-HTTP mode, which answers every call as an SSE stream and issues session ids.

mod common;

use common::{assert_sane, everything, load};

#[test]
fn sse_replies_from_server_everything() {
    let (_server, url) = everything();
    let run = load(&[
        "run",
        "--url",
        &url,
        "--requests",
        "200",
        "--connections",
        "4",
        "--tool",
        "echo",
        "--args",
        r#"{"message":"x"}"#,
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let r = run.json();
    assert_eq!(r["calls"], 200, "{r}");
    assert_eq!(r["ok"], 200, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_sane(&r);
}
