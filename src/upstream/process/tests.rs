use super::*;
use serde_json::Value;

fn lines(input: &[u8], max: usize) -> Vec<String> {
    let mut r = LineReader::new(input, max);
    let mut out = Vec::new();
    while let Some(l) = r.next_line().unwrap() {
        out.push(match l {
            Line::Full(b) => String::from_utf8_lossy(b).into_owned(),
            Line::TooLong { head, len } => {
                format!("TOOLONG {} {len}", String::from_utf8_lossy(head))
            }
        });
    }
    out
}

#[test]
fn line_reader_bounds_and_strips() {
    assert_eq!(lines(b"a\r\nbb\n\nccc", 10), ["a", "bb", "", "ccc"]);
    assert_eq!(lines(b"0123456789abc\nok\n", 4), ["TOOLONG 0123 13", "ok"]);
    assert!(lines(b"", 4).is_empty());
}

#[test]
fn line_reader_long_line_across_buffers() {
    let mut input = vec![b'x'; PIPE_BUFFER * 3 + 17];
    input.extend_from_slice(b"\n{}\n");
    assert_eq!(
        lines(&input, 8),
        [
            format!("TOOLONG xxxxxxxx {}", PIPE_BUFFER * 3 + 17),
            "{}".to_owned()
        ]
    );
}

#[test]
fn spawn_signal_reap() {
    let spec = StdioSpec {
        name: "t".into(),
        command: "sh".into(),
        args: vec!["-c".into(), "exec sleep 30".into()],
        env: vec![],
        cwd: None,
        max_line_bytes: 1024,
        max_in_flight: 1,
    };
    let s = spawn(&spec).unwrap();
    let p = s.process.clone();
    let waiter = std::thread::spawn(move || reap(&p, |_| {}));
    assert!(s.process.signal_group(libc::SIGTERM));
    assert_eq!(
        s.process.wait_exit(Duration::from_secs(10)).unwrap(),
        "killed by signal 15 (SIGTERM)"
    );
    waiter.join().unwrap();
    assert!(!s.process.signal_group(libc::SIGKILL));
    // SAFETY: probing a pid with signal 0 has no side effects.
    let rc = unsafe { libc::kill(s.process.pid() as libc::pid_t, 0) };
    assert_eq!(rc, -1);
    assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::ESRCH));
    assert_eq!(describe_exit(libc::CLD_EXITED, 3), "exit status: 3");
}

#[test]
fn encodes_messages() {
    let f = encode_message(Some(5), "a\"b\\c\u{1}", Some(b"{\n \"x\": 1\r\n}"));
    assert_eq!(f, b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"a\\\"b\\\\c\\u0001\",\"params\":{  \"x\": 1  }}\n");
    let v: Value = serde_json::from_slice(&f).unwrap();
    assert_eq!(v["method"], "a\"b\\c\u{1}");
    assert_eq!(
        encode_message(None, "m", None),
        b"{\"jsonrpc\":\"2.0\",\"method\":\"m\"}\n"
    );
    assert_eq!(
        encode_message(None, "m", Some(b" ")),
        b"{\"jsonrpc\":\"2.0\",\"method\":\"m\"}\n"
    );
}

#[test]
fn finds_leading_ids() {
    assert_eq!(
        leading_id(br#"{"jsonrpc":"2.0","id":42,"result":{"#),
        Some(42)
    );
    assert_eq!(leading_id(br#" { "id" : 7 }"#), Some(7));
    assert_eq!(leading_id(br#"{"result":{"id":3},"id":4"#), None);
    assert_eq!(leading_id(br#"{"jsonrpc":"2.0","id":"x""#), None);
    assert_eq!(leading_id(br#"{"id":12"#), None);
    assert_eq!(leading_id(b"xxxx"), None);
}
