//! Who may use the gateway and what each caller reaches: the keys (as hashes), their grants
//! (their own plus their groups'), and the tool groups served as `/mcp/{group}`.
//!
//! Built from the config on the control thread and shared by every snapshot of that config;
//! the registry pairs it with each snapshot's catalogs (`registry::access`). Owns: turning a
//! presented key into a caller. Must never: hold a key's value, or let a caller with no grants
//! reach anything.

use std::collections::HashMap;

use super::grants::Grants;
use super::keys::{KeyTable, ANONYMOUS};
use super::streams::{self, StreamGauge, StreamSlot};
use crate::config::GovernanceConfig;

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// No keys are configured (loopback listener only): everything is reachable.
    Anonymous,
    /// Index of the key in [`Governance::keys`].
    Key(usize),
}

/// Why a request was not let in; answered with 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Unknown,
}

impl AuthError {
    /// What the 401 says; never the presented value.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => {
                "Unauthorized: send a virtual key as `Authorization: Bearer <key>` or `x-api-key`"
            }
            AuthError::Unknown => "Unauthorized: the virtual key is not valid",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750).
    pub fn challenge(self) -> &'static str {
        match self {
            AuthError::Missing => r#"Bearer realm="mcpgate""#,
            AuthError::Unknown => r#"Bearer realm="mcpgate", error="invalid_token""#,
        }
    }
}

/// One key, without its value.
#[derive(Debug)]
pub struct KeyPolicy {
    pub name: String,
    /// What the key's sessions record of it.
    pub fingerprint: [u8; 8],
    /// The key's own grants and those of its groups.
    pub grants: Grants,
    pub team: Option<String>,
}

#[derive(Debug)]
pub struct GroupPolicy {
    pub name: String,
    pub grants: Grants,
}

pub struct Governance {
    keys: Vec<KeyPolicy>,
    table: KeyTable,
    groups: Vec<GroupPolicy>,
    group_index: HashMap<String, usize>,
    /// Open streams by key name (`""`: anonymous).
    streams: HashMap<String, StreamGauge>,
    max_streams: u32,
}

impl Governance {
    /// Builds the governance of `config`; counters of callers that `previous` knew carry
    /// over (a reload must not hand every key fresh limits).
    pub fn new(config: &GovernanceConfig, previous: Option<&Governance>) -> Governance {
        let groups: Vec<GroupPolicy> = config
            .groups
            .iter()
            .map(|(name, lists)| GroupPolicy {
                name: name.clone(),
                grants: Grants::from_lists(lists),
            })
            .collect();
        let group_index = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect::<HashMap<_, _>>();
        let keys = config
            .keys
            .iter()
            .map(|k| {
                let mut grants = Grants::from_lists(&k.grants);
                for g in &k.groups {
                    if let Some(&i) = group_index.get(g) {
                        grants.extend(&groups[i].grants);
                    }
                }
                KeyPolicy {
                    name: k.name.clone(),
                    fingerprint: k.hash.fingerprint(),
                    grants,
                    team: k.team.clone(),
                }
            })
            .collect();
        let table = KeyTable::new(config.keys.iter().map(|k| k.hash));
        let names = config
            .keys
            .iter()
            .map(|k| k.name.clone())
            .chain([String::new()]);
        let streams = streams::carry_over(
            names,
            &previous.map(|p| p.streams.clone()).unwrap_or_default(),
        );
        Governance {
            keys,
            table,
            groups,
            group_index,
            streams,
            max_streams: config.max_streams_per_key,
        }
    }

    /// No keys, no groups: anonymous access to everything.
    pub fn open() -> Governance {
        Governance::new(&GovernanceConfig::default(), None)
    }

    /// A slot for a long-lived stream of `caller`; the refusal says why (answered with 429).
    pub fn open_stream(&self, caller: Caller) -> Result<StreamSlot, String> {
        let name = self.key(caller).map_or("", |k| k.name.as_str());
        let slot = self
            .streams
            .get(name)
            .and_then(|gauge| gauge.open(self.max_streams));
        slot.ok_or_else(|| {
            let who = if name.is_empty() {
                "anonymous clients have".to_owned()
            } else {
                format!("key {name:?} has")
            };
            format!(
                "Too Many Requests: {who} {} streams open, the limit (max_streams_per_key); close one first",
                self.max_streams
            )
        })
    }

    /// Whether callers must present a key.
    pub fn requires_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The caller presenting `key` (from [`super::keys::presented`]).
    pub fn authenticate(&self, key: Option<&[u8]>) -> Result<Caller, AuthError> {
        if !self.requires_keys() {
            return Ok(Caller::Anonymous);
        }
        let key = key.ok_or(AuthError::Missing)?;
        self.table
            .find(key)
            .map(Caller::Key)
            .ok_or(AuthError::Unknown)
    }

    pub fn keys(&self) -> &[KeyPolicy] {
        &self.keys
    }

    pub fn key(&self, caller: Caller) -> Option<&KeyPolicy> {
        match caller {
            Caller::Key(i) => self.keys.get(i),
            Caller::Anonymous => None,
        }
    }

    /// What a session opened by `caller` records of it.
    pub fn fingerprint(&self, caller: Caller) -> [u8; 8] {
        self.key(caller).map_or(ANONYMOUS, |k| k.fingerprint)
    }

    pub fn groups(&self) -> &[GroupPolicy] {
        &self.groups
    }

    pub fn group_named(&self, name: &str) -> Option<usize> {
        self.group_index.get(name).copied()
    }

    /// A caller's grants; `None` means everything (anonymous).
    pub fn grants(&self, caller: Caller) -> Option<&Grants> {
        self.key(caller).map(|k| &k.grants)
    }
}
