use super::*;

fn progress(n: usize, pad: usize) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":1,"progress":{n},"message":"{}"}}}}"#,
        "x".repeat(pad)
    )
    .into_bytes()
}

fn drain(events: &mut CallEvents) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| events.try_next().map(|m| m.message)).collect()
}

#[test]
fn a_client_that_keeps_up_gets_every_message_in_order() {
    let (sink, mut events) = EventSink::new(Some(1));
    for n in 0..100 {
        assert!(sink.notify("s", "notifications/progress", progress(n, 10)));
        assert_eq!(drain(&mut events), [progress(n, 10)]);
    }
    assert_eq!(sink.shared.held_bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn beyond_the_bound_progress_is_coalesced_and_the_rest_refused_or_dropped() {
    let (sink, mut events) = EventSink::new(Some(1));
    let sent = 20_000;
    for n in 0..sent {
        assert!(sink.notify("s", "notifications/progress", progress(n, 1000)));
        assert!(sink.notify("s", "notifications/message", b"{}".to_vec()));
    }
    let held = sink.shared.held_bytes.load(Ordering::Relaxed);
    assert!(held <= MAX_HELD_EVENT_BYTES, "{held} bytes held");
    let request = ServerMessage {
        message: br#"{"jsonrpc":"2.0","id":9,"method":"roots/list"}"#.to_vec(),
        responder: None,
    };
    match sink.relay_request("s", request) {
        Err(NotRelayed::Behind(back)) => assert!(back.message.ends_with(b"roots/list\"}")),
        _ => panic!("a request beyond the bound must come back to be refused"),
    }
    let got = drain(&mut events);
    assert!(
        got.len() < 2 * sent / 10,
        "{} messages were kept",
        got.len()
    );
    // The newest progress is not lost: it is the last progress the client gets.
    let last_progress = got.iter().rev().find(|m| m.len() > 1000);
    assert_eq!(last_progress, Some(&progress(sent - 1, 1000)));
    assert_eq!(sink.shared.held_bytes.load(Ordering::Relaxed), 0);
    // Caught up: messages flow again.
    assert!(sink.notify("s", "notifications/message", b"{}".to_vec()));
    assert_eq!(drain(&mut events), [b"{}".to_vec()]);
}

#[test]
fn one_message_is_taken_whatever_its_size_when_nothing_is_held() {
    let (sink, mut events) = EventSink::new(None);
    let big = vec![b' '; 2 * MAX_HELD_EVENT_BYTES];
    assert!(sink.notify("s", "notifications/message", big.clone()));
    assert!(sink.notify("s", "notifications/message", b"{}".to_vec()));
    assert_eq!(drain(&mut events), [big]);
}

#[test]
fn a_gone_caller_is_reported() {
    let (sink, events) = EventSink::new(None);
    drop(events);
    assert!(!sink.notify("s", "notifications/progress", progress(1, 1)));
    let request = ServerMessage {
        message: b"{}".to_vec(),
        responder: None,
    };
    assert!(matches!(
        sink.relay_request("s", request),
        Err(NotRelayed::Gone)
    ));
}

#[test]
fn progress_never_overtakes_the_one_held_back() {
    let (sink, mut events) = EventSink::new(Some(1));
    let mut got = Vec::new();
    for n in 0..5_000 {
        assert!(sink.notify("s", "notifications/progress", progress(n, 1000)));
        // A client that reads, but slower than the server sends.
        if n % 3 == 0 {
            got.extend(events.try_next().map(|m| m.message));
        }
    }
    got.extend(drain(&mut events));
    let values: Vec<u64> = got
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(m).expect("JSON");
            v["params"]["progress"].as_u64().expect("a progress value")
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "out of order: {values:?}"
    );
    assert_eq!(values.last(), Some(&4_999));
    assert!(values.len() < 5_000, "nothing was coalesced");
}

#[test]
fn the_stream_ends_when_every_sink_is_gone_after_what_they_sent() {
    let (sink, events) = EventSink::new(None);
    let copy = sink.clone();
    assert!(sink.notify("s", "notifications/message", b"1".to_vec()));
    drop(sink);
    assert!(copy.notify("s", "notifications/message", b"2".to_vec()));
    drop(copy);
    let got: Vec<Vec<u8>> = futures_executor_like::collect(events);
    assert_eq!(got, [b"1".to_vec(), b"2".to_vec()]);
}

#[test]
fn a_receiver_waiting_on_another_thread_is_woken_by_a_message_and_by_the_end() {
    let (sink, events) = EventSink::new(None);
    let reader = std::thread::spawn(move || futures_executor_like::collect(events));
    for n in 0..1000u32 {
        assert!(sink.notify("s", "notifications/message", n.to_string().into_bytes()));
    }
    drop(sink);
    let got = reader.join().unwrap();
    let want: Vec<Vec<u8>> = (0..1000u32).map(|n| n.to_string().into_bytes()).collect();
    assert_eq!(got, want);
}

#[test]
fn nothing_is_queued_once_the_receiver_is_gone() {
    let (sink, events) = EventSink::new(None);
    assert!(sink.notify("s", "notifications/message", b"held".to_vec()));
    drop(events);
    assert!(
        lock(&sink.shared.queue).is_empty(),
        "what was waiting went with the receiver"
    );
    assert!(!sink.notify("s", "notifications/message", b"late".to_vec()));
    assert!(lock(&sink.shared.queue).is_empty());
}

/// Drives a stream to its end on this thread, parking until woken.
mod futures_executor_like {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};

    use futures_util::Stream;

    struct Unpark(std::thread::Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    pub fn collect(mut events: super::CallEvents) -> Vec<Vec<u8>> {
        let waker = Arc::new(Unpark(std::thread::current())).into();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        loop {
            match std::pin::Pin::new(&mut events).poll_next(&mut cx) {
                Poll::Ready(Some(m)) => got.push(m.message),
                Poll::Ready(None) => return got,
                Poll::Pending => {
                    // Bounded, so a wake-up that never comes fails the test instead of hanging
                    // it (a spurious return from park just polls again).
                    let parked = std::time::Instant::now();
                    std::thread::park_timeout(std::time::Duration::from_secs(60));
                    assert!(
                        parked.elapsed() < std::time::Duration::from_secs(60),
                        "never woken"
                    );
                }
            }
        }
    }
}
