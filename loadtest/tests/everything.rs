//! `mcpgate-load` against the reference server `@modelcontextprotocol/server-everything` in
//! streamable-HTTP mode, which answers every call as an SSE stream and issues session ids:
//! `run` on its own, and `compare` between it and mcpgate in front of it.

mod common;

use common::{assert_sane, everything, gateway_in_front_of, load};

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

#[test]
fn compare_server_everything_with_mcpgate_in_front_of_it() {
    let (_server, direct) = everything();
    let (_gateway, through, _config) = gateway_in_front_of("ev", &direct);
    let run = load(&[
        "compare",
        "--direct",
        &direct,
        "--gateway",
        &through,
        "--gateway-prefix",
        "ev__",
        "--tool",
        "echo",
        "--args",
        r#"{"message":"x"}"#,
        "--rounds",
        "2",
        "--round-secs",
        "1",
        "--connections",
        "2",
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let r = run.json();
    assert_eq!(r["direct"]["tools"], serde_json::json!(["echo"]), "{r}");
    assert_eq!(
        r["gateway"]["tools"],
        serde_json::json!(["ev__echo"]),
        "{r}"
    );
    for side in ["direct", "gateway"] {
        assert!(r[side]["ok"].as_u64().unwrap_or(0) > 0, "{side}: {r}");
        assert_eq!(r[side]["errors"], 0, "{side}: {r}");
        assert_sane(&r[side]);
    }
    assert!(r["ratio"].as_f64().is_some_and(|x| x > 0.0), "{r}");
    for p in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(r["added_latency_us"][p].is_i64(), "{p}: {r}");
    }
}
