//! `compare`: the same load on an upstream directly and through the gateway, in alternating
//! rounds within one process run, so machine noise hits both sides alike. Rounds go
//! direct-gateway, gateway-direct, … (ABBA), so neither side always runs second either.
//! Each side's rounds are merged (histograms added, measured times summed).

use std::time::Duration;

use serde::Serialize;

use crate::cli::CompareArgs;
use crate::cpu::WatchedProcess;
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
    /// With --direct-pid / --gateway-pid: CPU time per call of each side's server in its own
    /// rounds, µs.
    #[serde(skip_serializing_if = "CpuPerCall::is_empty")]
    cpu_us_per_call: CpuPerCall,
}

#[derive(Debug, Serialize)]
struct CpuPerCall {
    direct: Option<f64>,
    gateway: Option<f64>,
    /// gateway / direct.
    ratio: Option<f64>,
}

impl CpuPerCall {
    fn is_empty(&self) -> bool {
        self.direct.is_none() && self.gateway.is_none()
    }
}

/// One side: its plan and what its rounds measured so far.
struct Side {
    name: &'static str,
    plan: Plan,
    stats: Stats,
    measured: Duration,
    /// The process serving this side, and the CPU it used during this side's rounds.
    server: Option<WatchedProcess>,
    server_cpu: Duration,
}

impl Side {
    /// Runs one round; returns its throughput.
    fn round(&mut self, round: u32, rounds: u32, quiet: bool) -> Result<f64, String> {
        let mut plan = self.plan.clone();
        if !quiet {
            plan.progress = Some(format!("{} {round}/{rounds} ", self.name));
        }
        let cpu_before = self.server.map(|p| p.cpu()).transpose()?;
        let r = engine::run(plan)?;
        if let (Some(p), Some(before)) = (self.server, cpu_before) {
            self.server_cpu += p.cpu()?.saturating_sub(before);
        }
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

    /// The server's CPU per call over this side's rounds, µs (calls made in its rounds, the
    /// failed ones included: they cost the server too).
    fn server_cpu_per_call(&self) -> Option<f64> {
        self.server?;
        let calls = self.stats.latency.len() + self.stats.errors.total();
        (calls > 0).then(|| self.server_cpu.as_secs_f64() * 1e6 / calls as f64)
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
    let side = |name, url: &str, mix, pid: Option<u32>| -> Result<Side, String> {
        Ok(Side {
            name,
            plan: Plan::new(Target::new(url, &load.headers)?, load, stop, mix)?,
            stats: Stats::new(),
            measured: Duration::ZERO,
            server: pid.map(WatchedProcess::new).transpose()?,
            server_cpu: Duration::ZERO,
        })
    };
    let mut direct = side("direct", &args.direct, direct_mix, args.direct_pid)?;
    let mut gateway = side("gateway", &args.gateway, gateway_mix, args.gateway_pid)?;

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

    let (dc, gc) = (direct.server_cpu_per_call(), gateway.server_cpu_per_call());
    let cpu_us_per_call = CpuPerCall {
        direct: dc,
        gateway: gc,
        ratio: dc.zip(gc).filter(|(d, _)| *d > 0.0).map(|(d, g)| g / d),
    };
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
        cpu_us_per_call,
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
    let cpu = &c.cpu_us_per_call;
    if !cpu.is_empty() {
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        out += &format!(
            "{:<16}{:>14}{:>14}{:>18}\n",
            "server CPU µs",
            show(cpu.direct),
            show(cpu.gateway),
            cpu.ratio.map_or(String::new(), |r| format!("ratio {r:.3}"))
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
