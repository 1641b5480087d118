//! `Mcp-Session-Id` verification on whatever a client sends, and on altered real ids.
//!
//! Nothing but an id this gateway issued may verify: any change to a real one must fail.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mcpgate::mcp::session::{SessionKeys, SessionVerifier};
use mcpgate::mcp::version::ProtocolVersion;

/// Built once: keys are costly to key, and the fuzzer calls this millions of times. The
/// secret is random per process: with a fixed one, an id a past run issued (and the fuzzer
/// saved in its corpus, having seen it compared) would still verify, rightly.
fn keys() -> &'static (Arc<SessionKeys>, String) {
    static KEYS: OnceLock<(Arc<SessionKeys>, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys = SessionKeys::new(None, Duration::from_secs(3600)).expect("random keys");
        let id = keys
            .issue_with(ProtocolVersion::LATEST, 0b101, *b"keyprint")
            .expect("a session id");
        (keys, id)
    })
}

pub fn check(data: &[u8]) {
    let (keys, id) = keys();
    assert!(
        keys.verify(data).is_err() || data == id.as_bytes(),
        "a forged id verified"
    );

    // The real id with the input XORed over its start (and whatever of the input is longer
    // appended), and a prefix of it.
    let mut altered = id.as_bytes().to_vec();
    for (i, b) in data.iter().enumerate() {
        match altered.get_mut(i) {
            Some(a) => *a ^= b,
            None => altered.push(*b),
        }
    }
    let prefix = &id.as_bytes()[..data.len() % (id.len() + 1)];
    let verifier = SessionVerifier::new(keys.clone());
    let claims = verifier
        .verify(id.as_bytes())
        .expect("the real id verifies");
    assert_eq!(claims.version, ProtocolVersion::LATEST);
    assert_eq!(
        (claims.client_capabilities, claims.key),
        (0b101, *b"keyprint")
    );
    let verdict = verifier.verify(&altered);
    assert_eq!(
        verdict.is_ok(),
        altered == id.as_bytes(),
        "an altered id verified"
    );
    let verdict = verifier.verify(prefix);
    assert_eq!(
        verdict.is_ok(),
        prefix == id.as_bytes(),
        "a cut id verified"
    );
}
