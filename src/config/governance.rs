//! The governance part of the config: `virtual_keys`, `groups`, `teams`, `customers`.
//!
//! Owns: reading and checking those blocks, with errors that name the key path. Must never:
//! keep a key's value (it is hashed here and dropped) or put it in an error.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::ConfigError;
use crate::auth::keys::KeyHash;
use crate::auth::limits::{to_milli, Period};

/// Shortest key value accepted: keys are bearer secrets, and a short one can be guessed.
pub const MIN_KEY_LEN: usize = 16;

/// Calls a key may have in flight unless the config says otherwise.
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 1024;

/// Server name → original names (`"*"` = all), as written in the config.
pub type GrantLists = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    pub period: Period,
    /// Cost units per period (a call costs its tool's `tool_pricing`, 1 by default).
    pub units: f64,
}

/// The limits of one key, team or customer. Empty: unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitConfig {
    pub rate_limit: Option<RateLimitConfig>,
    pub budgets: Vec<BudgetConfig>,
    pub max_concurrent_calls: Option<u32>,
}

impl LimitConfig {
    pub fn is_empty(&self) -> bool {
        self.rate_limit.is_none() && self.budgets.is_empty() && self.max_concurrent_calls.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct KeyConfig {
    pub name: String,
    pub hash: KeyHash,
    pub team: Option<String>,
    pub grants: GrantLists,
    pub groups: Vec<String>,
    pub limits: LimitConfig,
}

#[derive(Debug, Clone, Default)]
pub struct TeamConfig {
    pub customer: Option<String>,
    pub limits: LimitConfig,
}

#[derive(Debug, Clone)]
pub struct GovernanceConfig {
    /// In config order. Empty: anonymous access (loopback only).
    pub keys: Vec<KeyConfig>,
    pub groups: BTreeMap<String, GrantLists>,
    pub teams: BTreeMap<String, TeamConfig>,
    pub customers: BTreeMap<String, LimitConfig>,
    /// Server → original tool name (`"*"`: any other tool) → cost of one call; 1 when unlisted.
    pub tool_pricing: BTreeMap<String, BTreeMap<String, f64>>,
    /// Calls one key may have in flight when its own `max_concurrent_calls` is not set.
    pub max_concurrent_calls_per_key: u32,
    /// `GET /mcp` and `GET /sse` streams one key (or all anonymous clients) may hold open.
    pub max_streams_per_key: u32,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            keys: Vec::new(),
            groups: BTreeMap::new(),
            teams: BTreeMap::new(),
            customers: BTreeMap::new(),
            tool_pricing: BTreeMap::new(),
            max_concurrent_calls_per_key: DEFAULT_MAX_CONCURRENT_CALLS,
            max_streams_per_key: crate::auth::streams::DEFAULT_MAX_STREAMS,
        }
    }
}

impl GovernanceConfig {
    /// What one call of `tool` of `server` costs against budgets.
    pub fn cost_of(&self, server: &str, tool: &str) -> f64 {
        self.tool_pricing
            .get(server)
            .and_then(|prices| prices.get(tool).or_else(|| prices.get("*")))
            .copied()
            .unwrap_or(1.0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    name: String,
    key: String,
    team: Option<String>,
    #[serde(default)]
    grants: GrantLists,
    #[serde(default)]
    groups: Vec<String>,
    rate_limit: Option<RawRate>,
    budget: Option<RawBudget>,
    max_concurrent_calls: Option<u32>,
    /// Free text for operators.
    #[allow(dead_code)]
    description: Option<String>,
}

/// The limit keys of a customer (a key's and a team's are the same, beside their other keys).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    rate_limit: Option<RawRate>,
    budget: Option<RawBudget>,
    max_concurrent_calls: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    per_second: f64,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    calls_per_minute: Option<f64>,
    calls_per_hour: Option<f64>,
    calls_per_day: Option<f64>,
    calls_per_month: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTeam {
    customer: Option<String>,
    rate_limit: Option<RawRate>,
    budget: Option<RawBudget>,
    max_concurrent_calls: Option<u32>,
}

/// The raw blocks, as deserialized beside the rest of the config.
#[derive(Default)]
pub(super) struct RawGovernance {
    pub virtual_keys: Option<Vec<RawKey>>,
    pub groups: Option<BTreeMap<String, GrantLists>>,
    pub teams: Option<BTreeMap<String, RawTeam>>,
    pub customers: Option<BTreeMap<String, RawLimits>>,
}

/// Checks the blocks; `servers` are every server name of the config (disabled ones too, so a
/// grant survives a server being switched off for a while).
pub(super) fn build(
    raw: RawGovernance,
    servers: &BTreeSet<String>,
    tool_pricing: BTreeMap<String, BTreeMap<String, f64>>,
) -> Result<GovernanceConfig, ConfigError> {
    let mut groups = BTreeMap::new();
    for (name, lists) in raw.groups.unwrap_or_default() {
        let path = format!("groups.{name}");
        if !valid_group_name(&name) {
            return Err(ConfigError::at(
                path,
                "group names are used in URLs (/mcp/{group}): expected letters, digits, '-', '_' or '.'",
            ));
        }
        check_grants(&path, &lists, servers)?;
        groups.insert(name, lists);
    }
    let mut customers = BTreeMap::new();
    for (name, limits) in raw.customers.unwrap_or_default() {
        let limits = build_limits(&format!("customers.{name}"), limits)?;
        customers.insert(name, limits);
    }
    let mut teams = BTreeMap::new();
    for (name, team) in raw.teams.unwrap_or_default() {
        let path = format!("teams.{name}");
        let limits = build_limits(
            &path,
            RawLimits {
                rate_limit: team.rate_limit,
                budget: team.budget,
                max_concurrent_calls: team.max_concurrent_calls,
            },
        )?;
        teams.insert(
            name,
            TeamConfig {
                customer: team.customer,
                limits,
            },
        );
    }
    let mut keys = Vec::new();
    let mut names = BTreeSet::new();
    let mut hashes: Vec<KeyHash> = Vec::new();
    for (i, key) in raw.virtual_keys.unwrap_or_default().into_iter().enumerate() {
        let path = format!("virtual_keys[{i}]");
        if key.name.trim().is_empty() {
            return Err(ConfigError::at(format!("{path}.name"), "expected a name"));
        }
        if !names.insert(key.name.clone()) {
            return Err(ConfigError::at(
                format!("{path}.name"),
                // Not quoted: the name may come from `${VAR}`, and the path says which key.
                "another key has the same name",
            ));
        }
        if key.key.chars().count() < MIN_KEY_LEN {
            return Err(ConfigError::at(
                format!("{path}.key"),
                format!("expected a random secret of at least {MIN_KEY_LEN} characters"),
            ));
        }
        let hash = KeyHash::of(key.key.as_bytes());
        drop(key.key);
        if hashes.contains(&hash) {
            return Err(ConfigError::at(
                format!("{path}.key"),
                "another key has the same value; every key needs its own",
            ));
        }
        hashes.push(hash);
        check_grants(&format!("{path}.grants"), &key.grants, servers)?;
        for (j, group) in key.groups.iter().enumerate() {
            if !groups.contains_key(group) {
                return Err(ConfigError::at(
                    format!("{path}.groups[{j}]"),
                    // Not quoted: the name may come from `${VAR}`; the path points at it.
                    "no group of that name in \"groups\"",
                ));
            }
        }
        keys.push(KeyConfig {
            name: key.name,
            hash,
            team: key.team,
            grants: key.grants,
            groups: key.groups,
            limits: build_limits(
                &path,
                RawLimits {
                    rate_limit: key.rate_limit,
                    budget: key.budget,
                    max_concurrent_calls: key.max_concurrent_calls,
                },
            )?,
        });
    }
    Ok(GovernanceConfig {
        keys,
        groups,
        teams,
        customers,
        tool_pricing,
        ..GovernanceConfig::default()
    })
}

fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_grants(
    path: &str,
    lists: &GrantLists,
    servers: &BTreeSet<String>,
) -> Result<(), ConfigError> {
    for (server, names) in lists {
        if !servers.contains(server) {
            return Err(ConfigError::at(
                format!("{path}.{server}"),
                "no server of that name in mcpServers",
            ));
        }
        if let Some(j) = names.iter().position(|n| n.is_empty()) {
            return Err(ConfigError::at(
                format!("{path}.{server}[{j}]"),
                "expected a tool, prompt or resource name, or \"*\"",
            ));
        }
    }
    Ok(())
}

fn build_limits(path: &str, raw: RawLimits) -> Result<LimitConfig, ConfigError> {
    let rate_limit = match raw.rate_limit {
        None => None,
        Some(r) => {
            if !(r.per_second.is_finite() && r.per_second > 0.0) {
                return Err(ConfigError::at(
                    format!("{path}.rate_limit.per_second"),
                    "expected a positive number",
                ));
            }
            let burst = match r.burst {
                Some(0) => {
                    return Err(ConfigError::at(
                        format!("{path}.rate_limit.burst"),
                        "expected at least 1",
                    ))
                }
                Some(b) => b,
                // One second's worth: the usual expectation of "N per second".
                None => (r.per_second.ceil() as u32).max(1),
            };
            Some(RateLimitConfig {
                per_second: r.per_second,
                burst,
            })
        }
    };
    let mut budgets = Vec::new();
    if let Some(b) = raw.budget {
        for (key, period, units) in [
            ("calls_per_minute", Period::Minute, b.calls_per_minute),
            ("calls_per_hour", Period::Hour, b.calls_per_hour),
            ("calls_per_day", Period::Day, b.calls_per_day),
            ("calls_per_month", Period::Month, b.calls_per_month),
        ] {
            let Some(units) = units else { continue };
            if !(units.is_finite() && units >= 0.0) || to_milli(units).is_none() {
                return Err(ConfigError::at(
                    format!("{path}.budget.{key}"),
                    "expected a number ≥ 0 and at most 4.39 billion",
                ));
            }
            budgets.push(BudgetConfig { period, units });
        }
    }
    if raw.max_concurrent_calls == Some(0) {
        return Err(ConfigError::at(
            format!("{path}.max_concurrent_calls"),
            "expected at least 1",
        ));
    }
    Ok(LimitConfig {
        rate_limit,
        budgets,
        max_concurrent_calls: raw.max_concurrent_calls,
    })
}

#[cfg(test)]
mod tests {
    use crate::auth::limits::Period;
    use crate::config::{parse_config, Config, ConfigError};

    const SECRET: &str = "s3cret-value-0123456789";

    fn parse(governance: &str) -> Result<Config, ConfigError> {
        let text = format!(
            r#"{{"mcpServers": {{"a": {{"command": "x"}}, "off": {{"command": "y", "disabled": true}}}}, {governance}}}"#
        );
        parse_config(&text, &|n| (n == "KEY").then(|| SECRET.to_owned()))
    }

    #[test]
    fn the_spec_example_loads() {
        let cfg = parse(
            r#""virtual_keys": [{"name": "eng", "key": "${KEY}", "team": "platform",
                "grants": {"a": ["echo", "get-sum"], "off": ["*"]}, "groups": ["readonly"],
                "rate_limit": {"per_second": 100, "burst": 200},
                "budget": {"calls_per_day": 1000}}],
               "groups": {"readonly": {"a": ["echo"]}}"#,
        )
        .unwrap();
        let key = &cfg.governance.keys[0];
        assert_eq!(key.name, "eng");
        assert_eq!(key.team.as_deref(), Some("platform"));
        assert_eq!(key.limits.rate_limit.map(|r| r.burst), Some(200));
        assert_eq!(key.limits.budgets[0].period, Period::Day);
        assert!(!format!("{cfg:?}").contains(SECRET), "Debug shows the key");
    }

    #[test]
    fn errors_name_key_paths_without_values() {
        let cases = [
            (
                r#""virtual_keys": [{"name": "k", "key": "short"}]"#,
                "virtual_keys[0].key",
            ),
            (
                r#""virtual_keys": [{"name": "k", "key": "${KEY}", "grants": {"nope": ["*"]}}]"#,
                "virtual_keys[0].grants.nope",
            ),
            (
                r#""virtual_keys": [{"name": "k", "key": "${KEY}", "groups": ["g"]}]"#,
                "virtual_keys[0].groups[0]",
            ),
            (
                r#""virtual_keys": [{"name": "k", "key": "${KEY}"}, {"name": "k", "key": "another-key-0123456789"}]"#,
                "virtual_keys[1].name",
            ),
            (
                r#""virtual_keys": [{"name": "k", "key": "${KEY}"}, {"name": "j", "key": "${KEY}"}]"#,
                "virtual_keys[1].key",
            ),
            (
                r#""virtual_keys": [{"name": "k", "key": "${KEY}", "rate_limit": {"per_second": 0}}]"#,
                "virtual_keys[0].rate_limit.per_second",
            ),
            (
                r#""virtual_keys": [{"name": "k", "key": "${KEY}", "grant": {}}]"#,
                "virtual_keys[0]",
            ),
            (r#""groups": {"a/b": {"a": ["*"]}}"#, "groups.a/b"),
            (
                r#""teams": {"t": {"budget": {"calls_per_day": -1}}}"#,
                "teams.t.budget.calls_per_day",
            ),
            (
                r#""customers": {"c": {"max_concurrent_calls": 0}}"#,
                "customers.c.max_concurrent_calls",
            ),
        ];
        for (text, path) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.path.starts_with(path), "{text} -> {err}");
            assert!(!err.to_string().contains(SECRET), "{err}");
        }
    }

    /// Found by the `config` fuzz target: a key's group reference that came from `${VAR}` was
    /// quoted in the error; the message for a repeated key name had the same flaw.
    #[test]
    fn names_from_variables_are_not_echoed() {
        let cases = [
            (
                r#""virtual_keys": [{"name": "${KEY}", "key": "key-0123456789abcdef"}, {"name": "${KEY}", "key": "key-fedcba9876543210"}]"#,
                "virtual_keys[1].name",
            ),
            (
                r#""virtual_keys": [{"name": "k", "key": "key-0123456789abcdef", "groups": ["${KEY}"]}]"#,
                "virtual_keys[0].groups[0]",
            ),
        ];
        for (text, path) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.path, path, "{text} -> {err}");
            assert!(!err.to_string().contains(SECRET), "{err}");
        }
    }
}
