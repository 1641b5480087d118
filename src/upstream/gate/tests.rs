use std::time::Duration;

use super::*;
use crate::runtime::{block_on, IoDriver};

fn gate(max: u32, queue_ms: u64, workers: usize) -> Arc<CallGate> {
    Arc::new(CallGate::new(
        CallBound {
            max_concurrent_calls: max,
            queue_timeout: Duration::from_millis(queue_ms),
        },
        workers,
    ))
}

#[test]
fn the_bound_is_split_between_workers() {
    let g = gate(5, 0, 2);
    assert_eq!((g.share(0), g.share(1)), (3, 2));
    assert_eq!(g.total(), 5);
    let g = gate(1, 0, 3);
    assert_eq!((g.share(0), g.share(1), g.share(2)), (1, 1, 1));
    assert_eq!(g.total(), 3);
    let g = gate(8, 0, 1);
    assert_eq!(g.share(0), 8);
}

/// Runs `f` on a fresh epoll runtime on its own thread (one runtime per thread).
fn on_runtime<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    std::thread::spawn(move || block_on(IoDriver::Epoll, f).expect("runtime"))
        .join()
        .expect("test thread");
}

#[test]
fn calls_beyond_the_share_wait_in_order_and_get_freed_slots() {
    on_runtime(|| async {
        let g = gate(2, 60_000, 1);
        let first = g.enter("s").await.expect("within the bound");
        let second = g.enter("s").await.expect("within the bound");
        let order = Rc::new(RefCell::new(Vec::new()));
        let waiters: Vec<_> = (0..2)
            .map(|n| {
                let (g, order) = (g.clone(), order.clone());
                monoio::spawn(async move {
                    let slot = g.enter("s").await.expect("a freed slot");
                    order.borrow_mut().push(n);
                    slot
                })
            })
            .collect();
        // Let both waiters queue up.
        while g.core().waiting.borrow().len() < 2 {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(first);
        let mut waiters = waiters.into_iter();
        let third = waiters.next().expect("waiter").await;
        assert_eq!(*order.borrow(), [0]);
        assert_eq!(g.core().in_flight.get(), 2, "the slot was handed over");
        drop(second);
        let fourth = waiters.next().expect("waiter").await;
        assert_eq!(*order.borrow(), [0, 1]);
        drop((third, fourth));
        assert_eq!(g.core().in_flight.get(), 0);
    });
}

#[test]
fn a_call_that_waits_too_long_fails_naming_the_server_and_leaves_no_trace() {
    on_runtime(|| async {
        let g = gate(1, 20, 1);
        let held = g.enter("slow").await.expect("within the bound");
        let refused = g.enter("slow").await.err().expect("saturated");
        assert_eq!(
            refused,
            UpstreamError::Saturated {
                server: "slow".into(),
                in_flight: 1,
                share: 1,
                max: 1,
                waited_ms: 20,
            }
        );
        let text = refused.to_string();
        assert!(text.contains("'slow' is saturated"), "{text}");
        assert!(
            g.core().waiting.borrow().is_empty(),
            "the waiter was left queued"
        );
        let no_wait = gate(1, 0, 1);
        let _held = no_wait.enter("s").await.expect("within the bound");
        assert!(no_wait.enter("s").await.is_err(), "0 means no waiting");
        drop(held);
        let again = g.enter("slow").await.expect("the slot is free again");
        drop(again);
        assert_eq!(g.core().in_flight.get(), 0);
    });
}

#[test]
fn a_waiter_dropped_after_being_granted_passes_the_slot_on() {
    on_runtime(|| async {
        let g = gate(1, 60_000, 1);
        let held = g.enter("s").await.expect("within the bound");
        let core = g.core();
        let granted_then_dropped = Wait::new(core.clone());
        let next = monoio::spawn({
            let g = g.clone();
            async move { g.enter("s").await.expect("the passed-on slot") }
        });
        while core.waiting.borrow().len() < 2 {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        assert!(granted_then_dropped.granted.get());
        drop(granted_then_dropped);
        let slot = next.await;
        assert_eq!(core.in_flight.get(), 1);
        drop(slot);
        assert_eq!(core.in_flight.get(), 0);
    });
}
