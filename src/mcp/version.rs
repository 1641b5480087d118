//! Protocol revisions the gateway serves to clients, and how one is chosen.

/// A revision the gateway speaks on `/mcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtocolVersion {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
}

const ALL: [ProtocolVersion; 4] = [
    ProtocolVersion::V2024_11_05,
    ProtocolVersion::V2025_03_26,
    ProtocolVersion::V2025_06_18,
    ProtocolVersion::V2025_11_25,
];

impl ProtocolVersion {
    pub const LATEST: ProtocolVersion = ProtocolVersion::V2025_11_25;
    /// What a request without `MCP-Protocol-Version` is taken to speak.
    pub const ASSUMED: ProtocolVersion = ProtocolVersion::V2025_03_26;

    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2024_11_05 => "2024-11-05",
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
        }
    }

    pub fn parse(s: &[u8]) -> Option<ProtocolVersion> {
        ALL.into_iter().find(|v| v.as_str().as_bytes() == s)
    }

    pub fn index(self) -> u8 {
        self as u8
    }

    pub fn from_index(i: u8) -> Option<ProtocolVersion> {
        ALL.get(usize::from(i)).copied()
    }

    /// The answer to a client asking for `requested`: the same revision when served, the
    /// latest otherwise (the client then decides whether it can go on).
    pub fn negotiate(requested: Option<&str>) -> ProtocolVersion {
        requested
            .and_then(|r| ProtocolVersion::parse(r.as_bytes()))
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
        for v in ALL {
            assert_eq!(ProtocolVersion::from_index(v.index()), Some(v));
        }
    }
}
