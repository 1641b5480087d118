//! `compare`: the same load on an upstream directly and through the gateway, in alternating
//! rounds within one process run, so machine noise hits both sides alike. Rounds go
//! direct-gateway, gateway-direct, … (ABBA), so neither side always runs second either.
//! Each side's rounds are merged (histograms added, measured times summed).

use std::time::Duration;

use serde::Serialize;

use crate::cli::CompareArgs;
use crate::engine;
use crate::plan::{self, Plan, Target};
use crate::report::{Latency, Summary};
use crate::stats::Stats;

/// One round's throughput on each side, calls/s.
#[derive(Debug, Serialize)]
struct Round {
    round: u32,
    direct: f64,
    gateway: f64,
}

/// gateway − direct, µs.
#[derive(Debug, Serialize)]
struct Added {
    min: i64,
    mean: f64,
    p50: i64,
    p90: i64,
    p99: i64,
    p99_9: i64,
    max: i64,
}

#[derive(Debug, Serialize)]
struct Comparison {
    rounds: Vec<Round>,
    round_secs: f64,
    direct: Summary,
    gateway: Summary,
    /// Gateway throughput / direct throughput.
    ratio: f64,
    added_latency_us: Added,
}

/// One side: its plan and what its rounds measured so far.
struct Side {
    name: &'static str,
    plan: Plan,
    stats: Stats,
    measured: Duration,
}

impl Side {
    /// Runs one round; returns its throughput.
    fn round(&mut self, round: u32, rounds: u32, quiet: bool) -> Result<f64, String> {
        let mut plan = self.plan.clone();
        if !quiet {
            plan.progress = Some(format!("{} {round}/{rounds} ", self.name));
        }
        let r = engine::run(plan)?;
        let throughput = Summary::new(&self.plan, &r.stats, r.measured).throughput;
        if !quiet {
            let l = Latency::of(&r.stats.latency);
            eprintln!(
                "{} round {round}/{rounds}: {throughput:.0} calls/s, p50 {} µs, p99 {} µs, errors {}",
                self.name,
                l.p50,
                l.p99,
                r.stats.errors.total()
            );
        }
        self.stats.merge(&r.stats);
        self.measured += r.measured;
        Ok(throughput)
    }

    fn summary(&self) -> Summary {
        Summary::new(&self.plan, &self.stats, self.measured)
    }
}

fn diff(g: u64, d: u64) -> i64 {
    g as i64 - d as i64
}

/// Runs the comparison; `Ok(true)` when both sides had successful calls.
pub fn run(args: &CompareArgs) -> Result<bool, String> {
    let load = &args.load;
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let stop = Plan::round_stop(args.round_secs)?;
    let direct_tool = args.direct_tool.as_deref().unwrap_or(&load.tool);
    let direct_mix = plan::mix_from(load, direct_tool)?;
    let gateway_mix = match &args.gateway_tool {
        Some(t) => plan::mix_from(load, t)?,
        None => direct_mix.clone(),
    }
    .renamed(|t| format!("{}{t}", args.gateway_prefix));
    let side = |name, url: &str, mix| -> Result<Side, String> {
        Ok(Side {
            name,
            plan: Plan::new(Target::new(url, &load.headers)?, load, stop, mix)?,
            stats: Stats::new(),
            measured: Duration::ZERO,
        })
    };
    let mut direct = side("direct", &args.direct, direct_mix)?;
    let mut gateway = side("gateway", &args.gateway, gateway_mix)?;

    let quiet = load.json;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let (d, g) = if round % 2 == 1 {
            let d = direct.round(round, args.rounds, quiet)?;
            (d, gateway.round(round, args.rounds, quiet)?)
        } else {
            let g = gateway.round(round, args.rounds, quiet)?;
            (direct.round(round, args.rounds, quiet)?, g)
        };
        rounds.push(Round {
            round,
            direct: d,
            gateway: g,
        });
    }

    let (ds, gs) = (direct.summary(), gateway.summary());
    let (dl, gl) = (ds.latency_us, gs.latency_us);
    let cmp = Comparison {
        rounds,
        round_secs: args.round_secs,
        ratio: if ds.throughput > 0.0 {
            gs.throughput / ds.throughput
        } else {
            0.0
        },
        added_latency_us: Added {
            min: diff(gl.min, dl.min),
            mean: gl.mean - dl.mean,
            p50: diff(gl.p50, dl.p50),
            p90: diff(gl.p90, dl.p90),
            p99: diff(gl.p99, dl.p99),
            p99_9: diff(gl.p99_9, dl.p99_9),
            max: diff(gl.max, dl.max),
        },
        direct: ds,
        gateway: gs,
    };
    if load.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&cmp).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", table(&cmp));
    }
    Ok(cmp.direct.ok > 0 && cmp.gateway.ok > 0)
}

fn table(c: &Comparison) -> String {
    let (d, g) = (&c.direct, &c.gateway);
    let mut out = format!(
        "direct   {}  tools: {}\ngateway  {}  tools: {}\n{} rounds × {} s per side, {} loop, {} connections, {} threads\n\n",
        d.url,
        d.tools.join(", "),
        g.url,
        g.tools.join(", "),
        c.rounds.len(),
        c.round_secs,
        d.mode,
        d.connections,
        d.threads
    );
    out += &format!(
        "{:<16}{:>14}{:>14}{:>18}\n",
        "", "direct", "gateway", "gateway − direct"
    );
    out += &format!(
        "{:<16}{:>14.0}{:>14.0}{:>18}\n",
        "throughput /s",
        d.throughput,
        g.throughput,
        format!("ratio {:.3}", c.ratio)
    );
    for ((name, dv), (_, gv)) in d.latency_us.rows().iter().zip(g.latency_us.rows()) {
        // Percentiles are whole µs; only the mean has a fraction worth showing.
        let prec = usize::from(*name == "mean");
        out += &format!(
            "{:<16}{:>14.prec$}{:>14.prec$}{:>+18.prec$}\n",
            format!("{name} µs"),
            dv,
            gv,
            gv - dv
        );
    }
    out += &format!("{:<16}{:>14}{:>14}\n", "calls", d.calls, g.calls);
    out += &format!("{:<16}{:>14}{:>14}\n", "errors", d.errors, g.errors);
    for (name, s) in [("direct", d), ("gateway", g)] {
        if s.errors > 0 {
            out += &format!("  {name} errors: {}\n", s.error_kinds.describe());
        }
    }
    out += "rounds (calls/s):";
    for r in &c.rounds {
        out += &format!("  {}: {:.0} / {:.0}", r.round, r.direct, r.gateway);
    }
    out.push('\n');
    out
}
