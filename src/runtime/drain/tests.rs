use super::*;
use crate::runtime::{block_on, IoDriver};

/// Runs `body` on a fresh thread with its own runtime: the drain state is per thread, and a
/// drained thread stays drained.
fn on_fresh_core<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    std::thread::spawn(move || block_on(IoDriver::Epoll, body).expect("runtime"))
        .join()
        .expect("the test thread panicked");
}

#[test]
fn waiters_wake_when_the_drain_begins_and_slots_are_reused() {
    on_fresh_core(|| async {
        assert_eq!(phase(), Phase::Serving);
        // Futures dropped before the drain give their slots back.
        for _ in 0..100 {
            let mut f = std::pin::pin!(reached(Phase::Draining));
            let waker = Waker::noop();
            assert!(f
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending());
        }
        let slots = CORE.with(|c| c.borrow().waiters.len());
        assert_eq!(slots, 1, "a dropped waiter's slot is reused");

        let waiting = monoio::spawn(reached(Phase::Draining));
        let at_deadline = monoio::spawn(reached(Phase::Deadline));
        let (tx, rx) = crossbeam_channel::unbounded();
        begin(3, tx);
        waiting.await;
        assert_eq!(phase(), Phase::Draining);
        assert_eq!(
            rx.try_recv().ok(),
            Some((
                3,
                Report::Started {
                    connections: 0,
                    requests: 0,
                    streams: 0
                }
            ))
        );
        assert_eq!(
            rx.try_recv().ok(),
            Some((3, Report::Idle(Tally::default())))
        );
        pass_deadline();
        at_deadline.await;
        assert_eq!(phase(), Phase::Deadline);
    });
}

#[test]
fn the_core_reports_idle_when_its_last_connection_closes() {
    on_fresh_core(|| async {
        let first = connection();
        let second = connection();
        let request = request();
        let (tx, rx) = crossbeam_channel::unbounded();
        begin(0, tx);
        assert_eq!(
            rx.try_recv().ok(),
            Some((
                0,
                Report::Started {
                    connections: 2,
                    requests: 1,
                    streams: 0
                }
            ))
        );
        note(Event::Answered);
        drop(request);
        drop(first);
        assert!(rx.try_recv().is_err(), "one connection is still open");
        note(Event::StreamEnded);
        drop(second);
        let expected = Tally {
            answered: 1,
            streams_ended: 1,
            ..Tally::default()
        };
        assert_eq!(rx.try_recv().ok(), Some((0, Report::Idle(expected))));
    });
}

#[test]
fn a_drained_listener_refuses_new_connections() {
    on_fresh_core(|| async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let guard = listening(std::os::fd::AsRawFd::as_raw_fd(&listener));
        assert!(std::net::TcpStream::connect(addr).is_ok());
        let (tx, _rx) = crossbeam_channel::unbounded();
        begin(0, tx);
        let refused = std::net::TcpStream::connect(addr).expect_err("the listener is shut");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        drop(guard);
        drop(listener);
    });
}

#[test]
fn notes_count_only_while_draining() {
    on_fresh_core(|| async {
        note(Event::Abandoned);
        let conn = connection();
        let (tx, rx) = crossbeam_channel::unbounded();
        begin(0, tx);
        note(Event::Abandoned);
        note(Event::Cut);
        drop(conn);
        let idle = rx.iter().find_map(|(_, r)| match r {
            Report::Idle(t) => Some(t),
            Report::Started { .. } => None,
        });
        assert_eq!(
            idle,
            Some(Tally {
                abandoned: 1,
                cut: 1,
                ..Tally::default()
            })
        );
    });
}
