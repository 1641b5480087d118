//! Stateless sessions: `Mcp-Session-Id` is a MAC'd token that carries what the gateway needs,
//! so any core (and any gateway instance sharing the secret) can serve any request without a
//! session store.
//!
//! Token = base64url(format ‖ issued-at ‖ protocol version ‖ client capabilities ‖ key
//! fingerprint ‖ nonce ‖ client info ‖ HMAC-SHA256 tag). The key fingerprint binds the session
//! to the virtual key that opened it: another key cannot use it. The client info (format 4) is
//! the `clientInfo` name and version the client declared, capped at 48 bytes, for the audit
//! log; tokens of format 3 (without it, issued by earlier builds) still verify. Ended
//! sessions (`DELETE /mcp`) are remembered until they would have expired anyway; that list is
//! per instance. Verified tokens are cached per core, so the MAC is computed once per session
//! and core rather than once per request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::client_info::{self, ClientInfo};
use super::version::ProtocolVersion;

const FORMAT: u8 = 4;
/// The format without client info, still accepted.
const FORMAT_3: u8 = 3;
const NONCE: usize = 8;
const KEY: usize = 8;
const TAG: usize = 16;
/// Where the key fingerprint starts.
const KEY_AT: usize = 1 + 8 + 1 + 1;
const PAYLOAD: usize = KEY_AT + KEY + NONCE;
/// Where the nonce starts.
const NONCE_AT: usize = PAYLOAD - NONCE;
/// A format-3 token; format 4 adds the client info between the nonce and the tag.
const TOKEN: usize = PAYLOAD + TAG;
const MAX_TOKEN: usize = TOKEN + client_info::MAX_ENCODED;
/// Base64 characters of the longest token.
const MAX_ID: usize = MAX_TOKEN.div_ceil(3) * 4;
/// Verified tokens remembered per core before the cache is cleared.
const CACHE_MAX: usize = 16 * 1024;

/// What a session id says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaims {
    pub version: ProtocolVersion,
    /// Seconds since the Unix epoch.
    pub issued: u64,
    pub nonce: [u8; NONCE],
    /// Bits of [`crate::mcp::server_requests::ClientCapability`] the client declared.
    pub client_capabilities: u8,
    /// Fingerprint of the virtual key that opened the session (zeros: anonymous).
    pub key: [u8; KEY],
    /// What the client declared itself at `initialize` (empty for format-3 tokens).
    pub client: ClientInfo,
}

/// Why a session id was not accepted; every case answers 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    Malformed,
    BadTag,
    Expired,
    Ended,
}

/// The shared secret and the list of ended sessions.
pub struct SessionKeys {
    /// Keyed once; cloned per tag (saves the key schedule on every check).
    mac: Hmac<Sha256>,
    ttl: Duration,
    ended: Mutex<HashMap<[u8; NONCE], u64>>,
    /// Bumped whenever a session ends, so per-core caches drop what they knew.
    epoch: AtomicU64,
}

/// Sessions expire in whole seconds: the tick-granular wall clock is precise enough.
fn now_secs() -> u64 {
    crate::runtime::coarse_clock::unix_secs()
}

impl SessionKeys {
    /// With no configured secret a random one is drawn: sessions then last one process lifetime.
    pub fn new(secret: Option<Vec<u8>>, ttl: Duration) -> std::io::Result<Arc<Self>> {
        let secret = match secret {
            Some(s) => s,
            None => {
                let mut s = vec![0u8; 32];
                getrandom::getrandom(&mut s).map_err(std::io::Error::other)?;
                s
            }
        };
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret).map_err(std::io::Error::other)?;
        Ok(Arc::new(SessionKeys {
            mac,
            ttl,
            ended: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }))
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG] {
        let mut mac = self.mac.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    /// A new anonymous session id for a client that negotiated `version`.
    pub fn issue(&self, version: ProtocolVersion) -> std::io::Result<String> {
        self.issue_with(version, 0, [0; KEY])
    }

    /// A session id that also records which client capabilities (bits) the client declared
    /// and the fingerprint of the key that opened it.
    pub fn issue_with(
        &self,
        version: ProtocolVersion,
        client_capabilities: u8,
        key: [u8; KEY],
    ) -> std::io::Result<String> {
        self.issue_for(version, client_capabilities, key, ClientInfo::default())
    }

    /// A session id that also records the client's declared name and version.
    pub fn issue_for(
        &self,
        version: ProtocolVersion,
        client_capabilities: u8,
        key: [u8; KEY],
        client: ClientInfo,
    ) -> std::io::Result<String> {
        let mut token = [0u8; MAX_TOKEN];
        token[0] = FORMAT;
        token[1..9].copy_from_slice(&now_secs().to_be_bytes());
        token[9] = version.index();
        token[10] = client_capabilities;
        token[KEY_AT..KEY_AT + KEY].copy_from_slice(&key);
        getrandom::getrandom(&mut token[NONCE_AT..PAYLOAD]).map_err(std::io::Error::other)?;
        let signed = PAYLOAD + client.encode(&mut token[PAYLOAD..]);
        let tag = self.tag(&token[..signed]);
        token[signed..signed + TAG].copy_from_slice(&tag);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token[..signed + TAG]))
    }

    /// Checks a token from scratch (MAC, expiry, ended list).
    pub fn verify(&self, id: &[u8]) -> Result<SessionClaims, SessionError> {
        if id.len() > MAX_ID {
            return Err(SessionError::Malformed);
        }
        let mut token = [0u8; MAX_TOKEN + 3];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(id, &mut token)
            .map_err(|_| SessionError::Malformed)?;
        let (client, signed) = match token[0] {
            FORMAT_3 if n == TOKEN => (ClientInfo::default(), PAYLOAD),
            FORMAT if n > TOKEN => {
                let (client, used) =
                    ClientInfo::decode(&token[PAYLOAD..n - TAG]).ok_or(SessionError::Malformed)?;
                (client, PAYLOAD + used)
            }
            _ => return Err(SessionError::Malformed),
        };
        if signed + TAG != n {
            return Err(SessionError::Malformed);
        }
        let expected = self.tag(&token[..signed]);
        if !constant_time_eq(&expected, &token[signed..n]) {
            return Err(SessionError::BadTag);
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&token[1..9]);
        let issued = u64::from_be_bytes(issued);
        let version = ProtocolVersion::from_index(token[9]).ok_or(SessionError::Malformed)?;
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&token[NONCE_AT..PAYLOAD]);
        let mut key = [0u8; KEY];
        key.copy_from_slice(&token[KEY_AT..KEY_AT + KEY]);
        let claims = SessionClaims {
            version,
            issued,
            nonce,
            client_capabilities: token[10],
            key,
            client,
        };
        if self.expires_at(&claims) <= now_secs() {
            return Err(SessionError::Expired);
        }
        if self.ended_contains(&nonce) {
            return Err(SessionError::Ended);
        }
        Ok(claims)
    }

    fn expires_at(&self, claims: &SessionClaims) -> u64 {
        claims.issued.saturating_add(self.ttl.as_secs())
    }

    fn ended_contains(&self, nonce: &[u8; NONCE]) -> bool {
        match self.ended.lock() {
            Ok(g) => g.contains_key(nonce),
            Err(p) => p.into_inner().contains_key(nonce),
        }
    }

    /// Ends a session: its id is refused from now on, on every core of this instance.
    pub fn end(&self, claims: &SessionClaims) {
        let now = now_secs();
        let expires = self.expires_at(claims);
        let mut ended = match self.ended.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        ended.retain(|_, &mut exp| exp > now);
        ended.insert(claims.nonce, expires);
        drop(ended);
        self.epoch.fetch_add(1, Ordering::Release);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Ids one core already verified, valid while `epoch` matches the keys' epoch.
struct VerifiedIds {
    epoch: u64,
    ids: HashMap<Box<[u8]>, SessionClaims, ahash::RandomState>,
}

/// A core's session checker: the shared keys plus a cache of ids it already verified.
pub struct SessionVerifier {
    keys: Arc<SessionKeys>,
    cache: RefCell<VerifiedIds>,
}

impl SessionVerifier {
    pub fn new(keys: Arc<SessionKeys>) -> Self {
        SessionVerifier {
            keys,
            cache: RefCell::new(VerifiedIds {
                epoch: 0,
                ids: HashMap::default(),
            }),
        }
    }

    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    pub fn keys_arc(&self) -> Arc<SessionKeys> {
        self.keys.clone()
    }

    pub fn verify(&self, id: &[u8]) -> Result<SessionClaims, SessionError> {
        let epoch = self.keys.epoch.load(Ordering::Acquire);
        let mut cache = self.cache.borrow_mut();
        if cache.epoch != epoch {
            cache.ids.clear();
            cache.epoch = epoch;
        }
        if let Some(claims) = cache.ids.get(id) {
            if self.keys.expires_at(claims) > now_secs() {
                return Ok(*claims);
            }
            cache.ids.remove(id);
            return Err(SessionError::Expired);
        }
        let claims = self.keys.verify(id)?;
        if cache.ids.len() >= CACHE_MAX {
            cache.ids.clear();
        }
        cache.ids.insert(id.into(), claims);
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Arc<SessionKeys> {
        SessionKeys::new(
            Some(b"0123456789abcdef0123456789abcdef".to_vec()),
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[test]
    fn issued_ids_verify_everywhere_with_the_same_secret() {
        let a = keys();
        let id = a.issue(ProtocolVersion::V2025_06_18).unwrap();
        let claims = keys().verify(id.as_bytes()).unwrap();
        assert_eq!(claims.version, ProtocolVersion::V2025_06_18);
    }

    #[test]
    fn forged_and_foreign_ids_are_refused() {
        let k = keys();
        let id = k.issue(ProtocolVersion::V2025_11_25).unwrap();
        let mut forged = id.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert!(k.verify(&forged).is_err());
        assert_eq!(k.verify(b"not-a-session"), Err(SessionError::Malformed));
        assert_eq!(k.verify(b""), Err(SessionError::Malformed));
        let other = SessionKeys::new(None, Duration::from_secs(60)).unwrap();
        assert_eq!(other.verify(id.as_bytes()), Err(SessionError::BadTag));
    }

    #[test]
    fn ended_sessions_are_refused_even_when_cached() {
        let k = keys();
        let v = SessionVerifier::new(k.clone());
        let id = k.issue(ProtocolVersion::V2025_03_26).unwrap();
        let claims = v.verify(id.as_bytes()).unwrap();
        k.end(&claims);
        assert_eq!(v.verify(id.as_bytes()), Err(SessionError::Ended));
    }

    #[test]
    fn sessions_carry_the_key_that_opened_them() {
        let k = keys();
        let id = k
            .issue_with(ProtocolVersion::V2025_06_18, 3, *b"keyprint")
            .unwrap();
        let claims = k.verify(id.as_bytes()).unwrap();
        assert_eq!(claims.key, *b"keyprint");
        assert_eq!(claims.client_capabilities, 3);
        let anonymous = k.issue(ProtocolVersion::V2025_06_18).unwrap();
        assert_eq!(k.verify(anonymous.as_bytes()).unwrap().key, [0; 8]);
    }

    #[test]
    fn sessions_carry_the_client_info() {
        let k = keys();
        let client = ClientInfo::new("claude-code", "1.0.72");
        let id = k
            .issue_for(ProtocolVersion::V2025_06_18, 1, *b"keyprint", client)
            .unwrap();
        let claims = k.verify(id.as_bytes()).unwrap();
        assert_eq!(claims.client, client);
        assert_eq!(claims.key, *b"keyprint");
        let longest = ClientInfo::new(&"n".repeat(99), &"v".repeat(99));
        let id = k
            .issue_for(ProtocolVersion::V2025_06_18, 0, [0; 8], longest)
            .unwrap();
        assert_eq!(id.len(), MAX_ID, "{id}");
        assert_eq!(k.verify(id.as_bytes()).unwrap().client, longest);
    }

    /// A token of the previous format (no client info), as earlier builds issued it.
    #[test]
    fn format_3_tokens_still_verify() {
        let k = keys();
        let mut token = [0u8; TOKEN];
        token[0] = FORMAT_3;
        token[1..9].copy_from_slice(&now_secs().to_be_bytes());
        token[9] = ProtocolVersion::V2025_03_26.index();
        token[10] = 2;
        token[KEY_AT..KEY_AT + KEY].copy_from_slice(b"keyprint");
        token[NONCE_AT..PAYLOAD].copy_from_slice(b"nonce-01");
        let tag = k.tag(&token[..PAYLOAD]);
        token[PAYLOAD..].copy_from_slice(&tag);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
        let claims = k.verify(id.as_bytes()).unwrap();
        assert_eq!(claims.nonce, *b"nonce-01");
        assert_eq!(claims.client_capabilities, 2);
        assert!(claims.client.is_empty());
        // The same bytes under format 4 are not a valid token.
        token[0] = FORMAT;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
        assert!(k.verify(id.as_bytes()).is_err());
    }

    #[test]
    fn expired_sessions_are_refused() {
        let k = SessionKeys::new(None, Duration::from_secs(0)).unwrap();
        let id = k.issue(ProtocolVersion::V2025_03_26).unwrap();
        assert_eq!(k.verify(id.as_bytes()), Err(SessionError::Expired));
    }
}
