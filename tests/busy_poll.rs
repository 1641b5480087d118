//! `busy_poll_us`: a worker that keeps polling after traffic must still serve every call and
//! still fire its timers (call timeouts) while traffic keeps it spinning.

mod common;

use common::*;
use serde_json::json;

both_drivers!(busy_polling_worker_serves_and_times_out_under_traffic);

async fn busy_polling_worker_serves_and_times_out_under_traffic(driver: &str) {
    let mut mock = mock_stdio(&["--faults"]);
    mock["timeout_ms"] = json!(1000);
    let mut cfg = config(&[("mock", mock)]);
    cfg["busy_poll_us"] = json!(5000);
    let gw = Gateway::start(driver, &cfg).await;

    // Keep the worker busy (and so spinning) with echo calls until the hung call returns.
    let busy = gw.client().await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut calls = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let message = format!("spin {calls}");
                let r = call_ok(&busy, "mock__echo", json!({ "message": message })).await;
                assert!(text_of(&r).contains(&message));
                calls += 1;
            }
            close(busy).await;
            calls
        })
    };

    let client = gw.client().await;
    let error = mcp_error(
        "mock__fault_hang",
        call(&client, "mock__fault_hang", json!({})).await,
    );
    assert_eq!(
        error.code.0, -32001,
        "expected the call to time out: {error:?}"
    );
    assert!(error.message.contains("mock"), "{error:?}");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = traffic.await.expect("traffic task");
    assert!(
        calls > 0,
        "the echo traffic made no call while the hung call waited"
    );
    close(client).await;
    gw.assert_echo_works("mock__echo").await;
}
