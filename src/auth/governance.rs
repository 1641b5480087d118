//! Who may use the gateway and what each caller reaches: the keys (as hashes), their grants
//! (their own plus their groups'), and the tool groups served as `/mcp/{group}`.
//!
//! Built from the config on the control thread and shared by every snapshot of that config;
//! the registry pairs it with each snapshot's catalogs (`registry::access`). Owns: turning a
//! presented key into a caller. Must never: hold a key's value, or let a caller with no grants
//! reach anything.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::grants::Grants;
use super::keys::{KeyTable, ANONYMOUS};
use super::limits::{
    to_milli, AccountId, AccountKind, AccountLabel, BudgetSpec, CallPermit, Clock, CoreLimits,
    LimitSpec, Limits, Now, RateSpec, Refusal, MILLI,
};
use super::streams::{self, StreamGauge, StreamSlot};
use crate::config::{GovernanceConfig, LimitConfig};

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
    /// The name again, shared: what audit and access-log records carry.
    pub shared_name: Arc<str>,
    /// What the key's sessions record of it.
    pub fingerprint: [u8; 8],
    /// The key's own grants and those of its groups.
    pub grants: Grants,
    pub team: Option<String>,
}

#[derive(Debug)]
pub struct GroupPolicy {
    pub name: String,
    /// The name again, shared: what audit records carry.
    pub shared_name: Arc<str>,
    pub grants: Grants,
}

pub struct Governance {
    keys: Vec<KeyPolicy>,
    /// Rate limits, budgets and concurrency caps of keys, teams and customers.
    limits: Arc<Limits>,
    /// Per key index: its account, its team's, its customer's.
    chains: Vec<Vec<AccountId>>,
    /// The anonymous caller's account (concurrency cap only).
    anonymous_chain: Vec<AccountId>,
    /// Worker cores the limits are sized for.
    cores: usize,
    /// Whether any account has a rate limit or a budget (else only concurrency is counted).
    timed: bool,
    table: KeyTable,
    groups: Vec<GroupPolicy>,
    group_index: HashMap<String, usize>,
    /// Open streams by key name (`""`: anonymous).
    streams: HashMap<String, StreamGauge>,
    max_streams: u32,
    tool_pricing: BTreeMap<String, BTreeMap<String, f64>>,
    /// What this was built from, for the admin API (key values are not in it, only hashes).
    source: GovernanceConfig,
}

thread_local! {
    /// This core's leases on the current limits; replaced when a reload brings new limits.
    static CORE_LIMITS: RefCell<Option<CoreLimits>> = const { RefCell::new(None) };
}

/// Runs `f` with this core's view of `limits`.
fn with_core_limits<R>(limits: &Arc<Limits>, f: impl FnOnce(&CoreLimits) -> R) -> R {
    CORE_LIMITS.with(|slot| {
        let mut slot = slot.borrow_mut();
        let current = slot
            .as_ref()
            .is_some_and(|core| Arc::ptr_eq(core.limits(), limits));
        if !current {
            *slot = None;
        }
        f(slot.get_or_insert_with(|| CoreLimits::new(limits)))
    })
}

/// The limit accounts of a config and the chain of each key, by label.
struct Accounts {
    specs: Vec<(AccountLabel, LimitSpec)>,
    chains: Vec<Vec<AccountLabel>>,
    anonymous: AccountLabel,
}

fn spec_of(limits: &LimitConfig, default_concurrency: Option<u32>) -> LimitSpec {
    LimitSpec {
        rate: limits.rate_limit.map(|r| RateSpec {
            per_second: r.per_second,
            burst: r.burst,
        }),
        budgets: limits
            .budgets
            .iter()
            .filter_map(|b| {
                Some(BudgetSpec {
                    period: b.period,
                    limit_milli: to_milli(b.units)?,
                })
            })
            .collect(),
        max_concurrent: limits.max_concurrent_calls.or(default_concurrency),
    }
}

/// Every key, team and customer as an account: keys first, then the anonymous caller, then
/// teams and customers (also those only named by a key or a team, which limit nothing).
fn accounts(config: &GovernanceConfig) -> Accounts {
    let mut specs: Vec<(AccountLabel, LimitSpec)> = Vec::new();
    let mut add = |kind: AccountKind, name: &str, spec: LimitSpec| -> AccountLabel {
        let label = AccountLabel::new(kind, name);
        if !specs.iter().any(|(l, _)| *l == label) {
            specs.push((label.clone(), spec));
        }
        label
    };
    let default_concurrency = Some(config.max_concurrent_calls_per_key);
    let mut chains = Vec::with_capacity(config.keys.len());
    for key in &config.keys {
        let mut chain = vec![add(
            AccountKind::Key,
            &key.name,
            spec_of(&key.limits, default_concurrency),
        )];
        if let Some(team_name) = &key.team {
            let team = config.teams.get(team_name).cloned().unwrap_or_default();
            chain.push(add(
                AccountKind::Team,
                team_name,
                spec_of(&team.limits, None),
            ));
            if let Some(customer_name) = &team.customer {
                let limits = config
                    .customers
                    .get(customer_name)
                    .cloned()
                    .unwrap_or_default();
                chain.push(add(
                    AccountKind::Customer,
                    customer_name,
                    spec_of(&limits, None),
                ));
            }
        }
        chains.push(chain);
    }
    // Anonymous callers exist only when no key does, so the name cannot meet a key's.
    let anonymous = add(
        AccountKind::Key,
        "anonymous",
        spec_of(&LimitConfig::default(), default_concurrency),
    );
    Accounts {
        specs,
        chains,
        anonymous,
    }
}

impl Governance {
    /// Builds the governance of `config` for `cores` worker cores; counters of callers that
    /// `previous` knew carry over (a reload must not hand every key fresh limits).
    pub fn new(
        config: &GovernanceConfig,
        previous: Option<&Governance>,
        cores: usize,
    ) -> Result<Governance, String> {
        let groups: Vec<GroupPolicy> = config
            .groups
            .iter()
            .map(|(name, lists)| GroupPolicy {
                shared_name: Arc::from(name.as_str()),
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
                    shared_name: Arc::from(k.name.as_str()),
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
        let accounts = accounts(config);
        let timed = accounts
            .specs
            .iter()
            .any(|(_, spec)| spec.rate.is_some() || !spec.budgets.is_empty());
        let limits = match previous {
            Some(p) => Limits::carry_over(accounts.specs, cores, &p.limits),
            None => Limits::new(accounts.specs, cores),
        }
        .map_err(|e| e.to_string())?;
        let ids = |labels: &[AccountLabel]| -> Vec<AccountId> {
            labels.iter().filter_map(|l| limits.id(l)).collect()
        };
        let chains = accounts.chains.iter().map(|c| ids(c)).collect();
        let anonymous_chain = ids(std::slice::from_ref(&accounts.anonymous));
        Ok(Governance {
            keys,
            limits,
            chains,
            anonymous_chain,
            cores,
            timed,
            table,
            groups,
            group_index,
            streams,
            max_streams: config.max_streams_per_key,
            tool_pricing: config.tool_pricing.clone(),
            source: config.clone(),
        })
    }

    /// No keys, no groups, no limits: anonymous access to everything.
    pub fn open() -> Governance {
        let config = GovernanceConfig {
            max_concurrent_calls_per_key: u32::MAX,
            ..GovernanceConfig::default()
        };
        Governance::new(&config, None, 1).unwrap_or_else(|_| unreachable!("no accounts to refuse"))
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// The accounts a request of `caller` is charged to: the key's, its team's, its
    /// customer's.
    pub fn chain(&self, caller: Caller) -> &[AccountId] {
        match caller {
            Caller::Key(i) => self.chains.get(i).map_or(&[], Vec::as_slice),
            Caller::Anonymous => &self.anonymous_chain,
        }
    }

    /// Whether any tool has a price other than 1.
    pub fn prices_tools(&self) -> bool {
        !self.tool_pricing.is_empty()
    }

    /// Charges one HTTP request to `caller`'s rate limits (key, team, customer).
    pub fn admit_request(&self, caller: Caller) -> Result<(), Refusal> {
        let chain = self.chain(caller);
        if chain.is_empty() {
            return Ok(());
        }
        if !self.timed {
            return Ok(());
        }
        with_core_limits(&self.limits, |core| core.admit_request(chain, Clock::now()))
    }

    /// Charges one forwarded call costing `cost_milli` to `caller`'s budgets and concurrency
    /// caps; the permit gives the concurrency slots back when dropped.
    pub fn admit_call(&self, caller: Caller, cost_milli: u64) -> Result<CallPermit, Refusal> {
        let chain = self.chain(caller);
        with_core_limits(&self.limits, |core| {
            core.admit_call(chain, cost_milli, self.now())
        })
    }

    /// The clock reading limits are judged by; without rate limits or budgets nothing reads
    /// it, so the two clock calls are saved.
    fn now(&self) -> Now {
        if self.timed {
            Clock::now()
        } else {
            Now {
                mono_ns: 0,
                unix_secs: 0,
            }
        }
    }

    /// What one call of `tool` of `server` costs, in milli-units.
    pub fn cost_milli(&self, server: &str, tool: &str) -> u64 {
        let units = self
            .tool_pricing
            .get(server)
            .and_then(|prices| prices.get(tool).or_else(|| prices.get("*")))
            .copied()
            .unwrap_or(1.0);
        to_milli(units).unwrap_or(MILLI)
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

    /// The config this governance was built from (keys as hashes, never values).
    pub fn config(&self) -> &GovernanceConfig {
        &self.source
    }

    /// Streams `caller` holds open now.
    pub fn open_streams(&self, caller: Caller) -> u32 {
        let name = self.key(caller).map_or("", |k| k.name.as_str());
        self.streams.get(name).map_or(0, StreamGauge::open_now)
    }

    /// Streams every caller holds open now, together.
    pub fn open_streams_total(&self) -> u64 {
        self.streams
            .values()
            .map(|gauge| u64::from(gauge.open_now()))
            .sum()
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
