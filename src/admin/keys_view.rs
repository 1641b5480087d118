//! `GET /api/keys`: the virtual keys with their team, customer, groups, grants and limits, and
//! what they use now (streams open, calls in flight, rate and budget counters of the key, its
//! team and its customer).
//!
//! Owns: how a key is shown. Must never: show a key's value or hash (the config keeps only the
//! hash; it is not shown either).

use serde_json::{json, Value};

use super::router::Reply;
use super::state::AdminState;
use crate::auth::limits::{Clock, Now, MILLI};
use crate::auth::{Caller, Governance};
use crate::config::{KeyConfig, LimitConfig};
use crate::http::Status;

pub fn list(state: &AdminState) -> Reply {
    let snapshot = state.registry.load();
    let governance = snapshot.access.governance();
    let now = Clock::now();
    let keys: Vec<Value> = governance
        .config()
        .keys
        .iter()
        .enumerate()
        .map(|(index, key)| shown(governance, index, key, now))
        .collect();
    let anonymous = !governance.requires_keys();
    let mut body = json!({ "anonymous": anonymous, "keys": keys });
    if let (true, Some(fields)) = (anonymous, body.as_object_mut()) {
        fields.insert(
            "anonymous_usage".into(),
            usage(governance, Caller::Anonymous, now),
        );
    }
    Reply::json(Status::Ok, body)
}

fn shown(governance: &Governance, index: usize, key: &KeyConfig, now: Now) -> Value {
    let config = governance.config();
    let customer = key
        .team
        .as_ref()
        .and_then(|team| config.teams.get(team))
        .and_then(|team| team.customer.clone());
    json!({
        "name": key.name,
        "team": key.team,
        "customer": customer,
        "groups": key.groups,
        "grants": key.grants,
        "limits": limits(&key.limits),
        "usage": usage(governance, Caller::Key(index), now),
    })
}

/// A key's own limits as configured (its team's and customer's show under `usage`).
fn limits(l: &LimitConfig) -> Value {
    let rate = l
        .rate_limit
        .map(|r| json!({ "per_second": r.per_second, "burst": r.burst }));
    let budgets: Vec<Value> = l
        .budgets
        .iter()
        .map(|b| json!({ "period": b.period.as_str(), "units": b.units }))
        .collect();
    json!({
        "rate_limit": rate,
        "budgets": budgets,
        "max_concurrent_calls": l.max_concurrent_calls,
    })
}

/// Streams open and, per account the caller is charged to (key, team, customer), the counters.
fn usage(governance: &Governance, caller: Caller, now: Now) -> Value {
    let limits = governance.limits();
    let units = |milli: u64| milli as f64 / MILLI as f64;
    let accounts: Vec<Value> = governance
        .chain(caller)
        .iter()
        .filter_map(|&id| {
            let label = limits.label(id)?;
            let spec = limits.spec(id)?;
            Some(json!({
                "kind": label.kind.as_str(),
                "name": &*label.name,
                "in_flight": limits.in_flight(id),
                "max_concurrent_calls": spec.max_concurrent,
                "rate": spec.rate.map(|r| json!({
                    "per_second": r.per_second,
                    "burst": r.burst,
                    "available": limits.rate_available(id, now),
                })),
                "budgets": spec.budgets.iter().map(|b| json!({
                    "period": b.period.as_str(),
                    "limit": units(b.limit_milli),
                    "used": units(limits.budget_used_milli(id, b.period, now)),
                })).collect::<Vec<_>>(),
            }))
        })
        .collect();
    json!({
        "streams_open": governance.open_streams(caller),
        "accounts": accounts,
    })
}
