//! `mcpgate-load run` against the mock upstream: closed and open loop, a scenario mix, error
//! accounting and exit codes. Counts are asserted, never timings.

mod common;

use common::{assert_sane, load, mock_upstream};

#[test]
fn closed_loop_completes_every_request() {
    let (_mock, url) = mock_upstream();
    let run = load(&[
        "run",
        "--url",
        &url,
        "--requests",
        "2000",
        "--connections",
        "4",
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let r = run.json();
    assert_eq!(r["calls"], 2000, "{r}");
    assert_eq!(r["ok"], 2000, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["mode"], "closed");
    assert_sane(&r);
    assert!(r["throughput"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn closed_loop_under_both_drivers_and_one_thread() {
    let (_mock, url) = mock_upstream();
    for driver in ["epoll", "uring"] {
        let run = load(&[
            "run",
            "--url",
            &url,
            "--requests",
            "300",
            "--connections",
            "3",
            "--threads",
            "1",
            "--io-driver",
            driver,
            "--json",
        ]);
        assert_eq!(run.code, Some(0), "{driver}: stderr:\n{}", run.stderr);
        let r = run.json();
        assert_eq!(
            (r["ok"].as_u64(), r["errors"].as_u64()),
            (Some(300), Some(0)),
            "{r}"
        );
        assert_eq!(r["threads"], 1);
        let expected = if driver == "uring" {
            "io_uring"
        } else {
            "epoll"
        };
        assert_eq!(r["io_driver"], expected);
    }
}

#[test]
fn open_loop_sends_about_rate_times_duration() {
    let (_mock, url) = mock_upstream();
    let run = load(&[
        "run",
        "--url",
        &url,
        "--rate",
        "500",
        "--duration-secs",
        "2",
        "--connections",
        "4",
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let r = run.json();
    let calls = r["calls"].as_u64().unwrap();
    // The schedule has exactly 1000 slots in the window; allow a generous band.
    assert!((500..=1100).contains(&calls), "calls {calls}: {r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["mode"], "open");
    assert!(r["late_sends"].as_u64().unwrap() <= calls, "{r}");
    assert_sane(&r);
}

#[test]
fn scenario_mix_with_generated_argument_sizes() {
    let (_mock, url) = mock_upstream();
    let dir = std::env::temp_dir().join(format!("mcpgate-load-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mix.json");
    std::fs::write(
        &path,
        r#"{"calls": [{"tool": "echo", "args": {"message": "hi"}, "weight": 3},
                      {"tool": "tool_0001", "args": {}, "weight": 1},
                      {"tool": "echo", "args_bytes": 8192, "weight": 1}]}"#,
    )
    .unwrap();
    let run = load(&[
        "run",
        "--url",
        &url,
        "--requests",
        "500",
        "--connections",
        "2",
        "--scenario",
        path.to_str().unwrap(),
        "--json",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let r = run.json();
    assert_eq!(
        (r["ok"].as_u64(), r["errors"].as_u64()),
        (Some(500), Some(0)),
        "{r}"
    );
    assert_eq!(r["tools"], serde_json::json!(["echo", "tool_0001", "echo"]));
}

#[test]
fn unknown_tool_is_a_jsonrpc_error_and_fails_the_run() {
    let (_mock, url) = mock_upstream();
    let run = load(&[
        "run",
        "--url",
        &url,
        "--requests",
        "100",
        "--connections",
        "2",
        "--tool",
        "no_such_tool",
        "--json",
    ]);
    // No call succeeded: the report is still printed, and the exit status says so.
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("no call succeeded"), "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["calls"], 100, "{r}");
    assert_eq!(r["ok"], 0, "{r}");
    assert_eq!(r["error_kinds"]["jsonrpc"]["-32602"], 100, "{r}");
}

#[test]
fn nothing_listening_reports_connect_errors_and_ends() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let run = load(&[
        "run",
        "--url",
        &url,
        "--duration-secs",
        "1",
        "--connections",
        "2",
        "--json",
    ]);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    let r = run.json();
    assert_eq!(r["ok"], 0, "{r}");
    assert!(r["error_kinds"]["connect"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["errors"], r["error_kinds"]["connect"], "{r}");

    // A request count ends too, each failed connect counting as one attempt.
    let run = load(&[
        "run",
        "--url",
        &url,
        "--requests",
        "20",
        "--connections",
        "2",
        "--json",
    ]);
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert_eq!(run.json()["error_kinds"]["connect"], 20);
}

#[test]
fn bad_arguments_exit_with_2() {
    for args in [
        &["run", "--url", "ftp://x/mcp", "--requests", "1"][..],
        &["run", "--url", "http://127.0.0.1:1/mcp", "--rate", "0"],
        &["run", "--url", "http://127.0.0.1:1/mcp", "--args", "[1]"],
        &[
            "run",
            "--url",
            "http://127.0.0.1:1/mcp",
            "--header",
            "no-colon",
        ],
        &[
            "run",
            "--url",
            "http://127.0.0.1:1/mcp",
            "--requests",
            "1",
            "--duration-secs",
            "1",
        ],
    ] {
        let run = load(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}
