//! The gate every MCP request passes before its method runs: which key it presents and which
//! tool group its URL names.
//!
//! Owns: the 401 (with `WWW-Authenticate`) for a missing or wrong key, the 404 for an unknown
//! group, the 429 (with `Retry-After`) of a rate limit, and the check that a session is used
//! by the key that opened it. Must never: echo a
//! presented key, or let a request past without a caller.

use super::service::refuse;
use super::session::SessionClaims;
use crate::auth::keys::presented;
use crate::auth::Caller;
use crate::http::{RequestHead, Response, Status};
use crate::jsonrpc::ErrorCode;
use crate::registry::{Access, RegistrySnapshot};

/// What the gate settled for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub caller: Caller,
    /// The tool group `/mcp/{group}` names (index in the governance).
    pub group: Option<usize>,
    /// What sessions record of the caller's key.
    pub key: [u8; 8],
}

impl Admission {
    /// The caller's reach in `snapshot`.
    pub fn access<'s>(&self, snapshot: &'s RegistrySnapshot) -> Access<'s> {
        Access::new(snapshot, self.caller, self.group)
    }

    /// Whether a session may be used by this caller; on refusal the 404 is already written
    /// (a client then opens a session of its own, which is what it should do).
    pub fn owns(&self, claims: &SessionClaims, resp: &mut Response) -> bool {
        let owned = claims.key == self.key;
        if !owned {
            refuse(
                resp,
                Status::NotFound,
                ErrorCode::InvalidRequest,
                "Session not found: this session was opened with another key; initialize again",
            );
        }
        owned
    }
}

/// The tool group a path names: `Ok(None)` for `/mcp`, `Ok(Some(name))` for `/mcp/{name}`,
/// `Err(())` for anything else.
pub fn group_in_path(path: &str) -> Result<Option<&str>, ()> {
    match path {
        "/mcp" | "/mcp/" | "/sse" | "/messages" => Ok(None),
        _ => match path.strip_prefix("/mcp/") {
            Some(name) if !name.is_empty() && !name.contains('/') => Ok(Some(name)),
            Some(name) => name
                .strip_suffix('/')
                .filter(|n| !n.contains('/') && !n.is_empty())
                .map(Some)
                .ok_or(()),
            None => Err(()),
        },
    }
}

/// Lets `head` in, or writes the refusal and returns `None`.
pub fn admit(
    snapshot: &RegistrySnapshot,
    head: &RequestHead<'_>,
    group: Option<&str>,
    resp: &mut Response,
) -> Option<Admission> {
    let governance = snapshot.access.governance();
    let caller = match governance.authenticate(presented(head.authorization, head.api_key)) {
        Ok(caller) => caller,
        Err(e) => {
            resp.header("WWW-Authenticate", e.challenge());
            refuse(
                resp,
                Status::Unauthorized,
                ErrorCode::InvalidRequest,
                e.message(),
            );
            return None;
        }
    };
    let group = match group {
        None => None,
        Some(name) => match governance.group_named(name) {
            Some(g) => Some(g),
            None => {
                let shown: String = name.chars().take(64).collect();
                resp.text(
                    Status::NotFound,
                    &format!("Not Found: no tool group named {shown:?}\n"),
                );
                return None;
            }
        },
    };
    if let Err(refusal) = governance.admit_request(caller) {
        resp.header("Retry-After", refusal.retry_after_secs().to_string());
        refuse(
            resp,
            Status::TooManyRequests,
            ErrorCode::LimitExceeded,
            &format!("Too Many Requests: {refusal}"),
        );
        return None;
    }
    Some(Admission {
        caller,
        group,
        key: governance.fingerprint(caller),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_paths() {
        assert_eq!(group_in_path("/mcp"), Ok(None));
        assert_eq!(group_in_path("/mcp/"), Ok(None));
        assert_eq!(group_in_path("/mcp/readonly"), Ok(Some("readonly")));
        assert_eq!(group_in_path("/mcp/readonly/"), Ok(Some("readonly")));
        assert_eq!(group_in_path("/mcp/a/b"), Err(()));
        assert_eq!(group_in_path("/other"), Err(()));
    }
}
