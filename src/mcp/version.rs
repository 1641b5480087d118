//! Protocol revisions the gateway serves to clients, and how one is chosen.
//!
//! 2026-07-28 is served alongside the handshake-era revisions but is never *negotiated*: it has
//! no `initialize` (each request names its revision in `_meta`), so `initialize` only ever
//! answers with a handshake-era revision.

/// A revision the gateway speaks on `/mcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtocolVersion {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    /// The stateless revision: no handshake, no session (`server/discover`, per-request `_meta`).
    V2026_07_28,
}

const ALL: [ProtocolVersion; 5] = [
    ProtocolVersion::V2024_11_05,
    ProtocolVersion::V2025_03_26,
    ProtocolVersion::V2025_06_18,
    ProtocolVersion::V2025_11_25,
    ProtocolVersion::V2026_07_28,
];

impl ProtocolVersion {
    /// The newest revision with an `initialize` handshake: what `initialize` falls back to.
    pub const LATEST: ProtocolVersion = ProtocolVersion::V2025_11_25;
    /// The stateless revision.
    pub const STATELESS: ProtocolVersion = ProtocolVersion::V2026_07_28;
    /// What a request without `MCP-Protocol-Version` is taken to speak.
    pub const ASSUMED: ProtocolVersion = ProtocolVersion::V2025_03_26;

    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2024_11_05 => "2024-11-05",
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
            ProtocolVersion::V2026_07_28 => "2026-07-28",
        }
    }

    pub fn parse(s: &[u8]) -> Option<ProtocolVersion> {
        ALL.into_iter().find(|v| v.as_str().as_bytes() == s)
    }

    /// Every revision served, newest first (what `server/discover` and version errors list).
    pub fn supported() -> impl Iterator<Item = ProtocolVersion> {
        ALL.into_iter().rev()
    }

    /// Whether the revision starts with `initialize` (every one before 2026-07-28).
    pub fn has_handshake(self) -> bool {
        self < ProtocolVersion::STATELESS
    }

    pub fn index(self) -> u8 {
        self as u8
    }

    pub fn from_index(i: u8) -> Option<ProtocolVersion> {
        ALL.get(usize::from(i)).copied()
    }

    /// The answer to a client asking for `requested` in `initialize`: the same revision when
    /// it is a handshake revision the gateway serves, the latest handshake revision otherwise
    /// (the client then decides whether it can go on). A client naming 2026-07-28 here gets
    /// 2025-11-25: that revision has no handshake to answer.
    pub fn negotiate(requested: Option<&str>) -> ProtocolVersion {
        requested
            .and_then(|r| ProtocolVersion::parse(r.as_bytes()))
            .filter(|v| v.has_handshake())
            .unwrap_or(ProtocolVersion::LATEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(
            ProtocolVersion::negotiate(Some("2025-06-18")),
            ProtocolVersion::V2025_06_18
        );
        // Legacy HTTP+SSE clients ask for the revision of that transport and get it.
        assert_eq!(
            ProtocolVersion::negotiate(Some("2024-11-05")),
            ProtocolVersion::V2024_11_05
        );
        assert_eq!(
            ProtocolVersion::negotiate(Some("2099-01-01")),
            ProtocolVersion::LATEST
        );
        assert_eq!(ProtocolVersion::negotiate(None), ProtocolVersion::LATEST);
        assert_eq!(
            ProtocolVersion::negotiate(Some("2026-07-28")),
            ProtocolVersion::V2025_11_25,
            "initialize never offers the handshake-less revision"
        );
        assert_eq!(
            ProtocolVersion::negotiate(Some("2025-03-26")),
            ProtocolVersion::V2025_03_26
        );
        assert_eq!(
            ProtocolVersion::parse(b"2026-07-28"),
            Some(ProtocolVersion::STATELESS)
        );
        assert!(!ProtocolVersion::STATELESS.has_handshake());
        for v in ALL {
            assert_eq!(ProtocolVersion::from_index(v.index()), Some(v));
        }
    }
}
