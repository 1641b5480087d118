//! `mcpgate-load`: a load generator for any MCP streamable-HTTP endpoint, thread-per-core like
//! the gateway it measures, so it is not the bottleneck.
//!
//! A call's path through the modules: `cli` (flags) → `plan` (checked run description) →
//! `engine` (threads via `workers`, the start `gate`, connection tasks paced by `schedule`) →
//! `mcp_conn` (a session: handshake, request, JSON or SSE reply) with bodies from `mix` and
//! responses judged by `reply` → `stats` (histogram, error counts) → `report` / `compare`
//! (output); `progress` prints the live line.
//!
//! Exit status: 0 when the run completed and at least one call succeeded (errors are
//! reported, not fatal); 1 when no call succeeded (on either side, for `compare`); 2 for bad
//! arguments or a run that could not start.

mod cli;
mod compare;
mod cpu;
mod engine;
mod gate;
mod mcp_conn;
mod mix;
mod plan;
mod progress;
mod reply;
mod report;
mod schedule;
mod stats;
mod workers;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, RunArgs};
use plan::{Plan, Target};
use report::Summary;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `run`; `Ok(true)` when some call succeeded.
fn run(args: &RunArgs) -> Result<bool, String> {
    let load = &args.load;
    let target = Target::new(&args.url, &load.headers)?;
    let mix = plan::mix_from(load, &load.tool)?;
    let stop = Plan::stop_from(args.duration_secs, args.requests)?;
    let mut plan = Plan::new(target, load, stop, mix)?;
    if !load.json {
        plan.progress = Some(String::new());
    }
    let result = engine::run(plan.clone())?;
    let summary = Summary::new(&plan, &result.stats, result.measured);
    if load.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(summary.ok > 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Run(args) => run(args),
        Command::Compare(args) => compare::run(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("mcpgate-load: no call succeeded");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("mcpgate-load: {e}");
            ExitCode::from(2)
        }
    }
}
