//! What governance adds to one tool call on a worker core: reading the presented key, finding
//! it (SHA-256, O(1) table), the rate limit of key → team → customer, the grant check of the
//! tool, its price and the budgets and concurrency caps of the chain. Compared with the same
//! steps for an anonymous caller when no keys are configured (the open gateway), which is
//! what a call pays without governance.

#[path = "support/registry.rs"]
mod registry;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

use mcpgate::auth::keys::{presented, KeyHash};
use mcpgate::auth::limits::Period;
use mcpgate::auth::Governance;
use mcpgate::config::{
    BudgetConfig, GovernanceConfig, KeyConfig, LimitConfig, RateLimitConfig, TeamConfig,
};
use mcpgate::registry::{Access, CatalogKind, RegistrySnapshot};

const KEYS: usize = 1000;

fn key_value(i: usize) -> String {
    format!("bench-key-{i:06}-5c2e9a7f1b3d")
}

/// 1,000 keys in one team, each with a rate limit and a daily budget, the team with a monthly
/// budget; limits high enough never to refuse during a run.
fn governed() -> GovernanceConfig {
    let limits = LimitConfig {
        rate_limit: Some(RateLimitConfig {
            per_second: 1e9,
            burst: 1_000_000_000,
        }),
        budgets: vec![BudgetConfig {
            period: Period::Day,
            units: 4e9,
        }],
        max_concurrent_calls: None,
    };
    let keys = (0..KEYS)
        .map(|i| KeyConfig {
            name: format!("key{i}"),
            hash: KeyHash::of(key_value(i).as_bytes()),
            team: Some("bench".into()),
            grants: BTreeMap::from([("mock".to_string(), vec!["*".to_string()])]),
            groups: Vec::new(),
            limits: limits.clone(),
        })
        .collect();
    let mut config = GovernanceConfig {
        keys,
        ..GovernanceConfig::default()
    };
    config.teams.insert(
        "bench".into(),
        TeamConfig {
            customer: None,
            limits: LimitConfig {
                budgets: vec![BudgetConfig {
                    period: Period::Month,
                    units: 4e9,
                }],
                ..LimitConfig::default()
            },
        },
    );
    config.tool_pricing.insert(
        "mock".into(),
        BTreeMap::from([("tool_0321".to_string(), 2.0)]),
    );
    config
}

/// The gate and the charge of one `tools/call` of `mock__tool_0321`.
fn gate_and_charge(snapshot: &RegistrySnapshot, authorization: &[u8]) -> bool {
    let governance = snapshot.access.governance();
    let Ok(caller) = governance.authenticate(presented(Some(authorization), None)) else {
        return false;
    };
    if governance.admit_request(caller).is_err() {
        return false;
    }
    let access = Access::new(snapshot, caller, None);
    let Some((index, _)) = snapshot.tools.find("mock__tool_0321") else {
        return false;
    };
    if !access.allows_item(CatalogKind::Tools, index) {
        return false;
    }
    let permit = access.admit_call(access.tool_cost_milli(index));
    permit.is_ok()
}

fn bench_auth(c: &mut Criterion) {
    let open = registry::snapshot(500);
    let governance = match Governance::new(&governed(), None, 1) {
        Ok(g) => Arc::new(g),
        Err(e) => panic!("bench setup: {e}"),
    };
    let keyed = registry::snapshot(500).govern(governance);
    let bearer = format!("Bearer {}", key_value(500));
    assert!(
        gate_and_charge(&keyed, bearer.as_bytes()),
        "the key is let in"
    );
    assert!(gate_and_charge(&open, b""), "anonymous is let in");

    let mut g = c.benchmark_group("auth");
    g.bench_function("gate_and_charge/open_no_keys", |b| {
        b.iter(|| black_box(gate_and_charge(black_box(&open), black_box(b""))))
    });
    g.bench_function("gate_and_charge/key_team_limits_1000_keys", |b| {
        b.iter(|| {
            black_box(gate_and_charge(
                black_box(&keyed),
                black_box(bearer.as_bytes()),
            ))
        })
    });
    let key = key_value(500);
    g.bench_function("key_lookup_sha256", |b| {
        let table = keyed.access.governance();
        b.iter(|| black_box(table.authenticate(Some(black_box(key.as_bytes())))))
    });
    g.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
