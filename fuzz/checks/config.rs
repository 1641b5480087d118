//! The config loader: any text, with `${VAR}` references resolved to a secret.
//!
//! Config errors are printed and logged, so no error may quote a value a `${VAR}` reference
//! expanded to (a token, a key). The input itself may contain anything, including the secret's
//! marker; then the check cannot tell an echo from a quote of the input, and skips it.

use mcpgate::config::parse_config;

/// Marker present in every secret below; an error containing it leaked one.
const MARKER: &str = "Zq8SECRETVALUE";
/// Secrets as a plain token, and as one with characters that need escaping in messages
/// (quotes, backticks, a separator serde's messages use).
const SECRETS: [&str; 2] = [
    "tok-Zq8SECRETVALUE-123",
    "a\", `Zq8SECRETVALUE`, expected \\\"x",
];

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for secret in SECRETS {
        // Variables named UNSET* are unset, so defaults and the "not set" error are reached.
        let lookup = |name: &str| (!name.starts_with("UNSET")).then(|| secret.to_owned());
        let Err(err) = parse_config(&text, &lookup) else {
            continue;
        };
        let shown = err.to_string();
        if !text.contains(MARKER) {
            assert!(
                !shown.contains(MARKER),
                "a config error shows an expanded value: {shown}"
            );
        }
    }
}
