//! `mcpgate-load compare`, here with the mock upstream on both sides (the comparison logic
//! does not care that the "gateway" is the same server).

mod common;

use common::{load, mock_upstream};

#[test]
fn compare_reports_both_sides_and_the_ratio() {
    let (_mock, url) = mock_upstream();
    let run = load(&[
        "compare",
        "--direct",
        &url,
        "--gateway",
        &url,
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
    for side in ["direct", "gateway"] {
        assert!(r[side]["calls"].as_u64().unwrap() > 0, "{side}: {r}");
        assert_eq!(r[side]["errors"], 0, "{side}: {r}");
    }
    assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["rounds"].as_array().unwrap().len(), 2, "{r}");
    for p in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(r["added_latency_us"][p].is_i64(), "{p}: {r}");
    }
}

#[test]
fn compare_applies_the_gateway_prefix_to_tool_names() {
    let (_mock, url) = mock_upstream();
    // The mock has no `gw__echo`: every gateway-side call fails, so the run exits 1.
    let run = load(&[
        "compare",
        "--direct",
        &url,
        "--gateway",
        &url,
        "--rounds",
        "1",
        "--round-secs",
        "1",
        "--connections",
        "1",
        "--gateway-prefix",
        "gw__",
        "--json",
    ]);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    let r = run.json();
    assert_eq!(r["gateway"]["tools"], serde_json::json!(["gw__echo"]));
    assert!(r["direct"]["ok"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["gateway"]["ok"], 0, "{r}");
}
