//! The command line: `run` (load one endpoint) and `compare` (an upstream directly and through
//! the gateway, alternately). Flags only; checking them and turning them into a run plan is
//! `plan`'s job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mcpgate-load",
    version,
    about = "Load generator for MCP streamable-HTTP endpoints (thread-per-core, HDR latency percentiles)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load one endpoint with `tools/call` requests and report throughput, latency and errors.
    Run(RunArgs),
    /// Load an upstream directly and through the gateway in alternating rounds, and compare.
    Compare(CompareArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp
    #[arg(long)]
    pub url: String,
    /// Measure for this long (after the warm-up). Default 10 s unless --requests is given.
    #[arg(long, conflicts_with = "requests")]
    pub duration_secs: Option<f64>,
    /// Measure this many calls (after the warm-up), split evenly over the connections.
    #[arg(long)]
    pub requests: Option<u64>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The upstream's own endpoint.
    #[arg(long)]
    pub direct: String,
    /// The gateway's endpoint, in front of that upstream.
    #[arg(long)]
    pub gateway: String,
    /// Tool called on the direct side (default: --tool).
    #[arg(long, conflicts_with = "scenario")]
    pub direct_tool: Option<String>,
    /// Tool called through the gateway (default: the direct tool, with --gateway-prefix).
    #[arg(long, conflicts_with = "scenario")]
    pub gateway_tool: Option<String>,
    /// Prepended to every tool name on the gateway side, e.g. `mock__` (works with --scenario).
    #[arg(long, default_value = "")]
    pub gateway_prefix: String,
    /// Rounds; each runs the direct side and the gateway side once.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Measured seconds per side and round.
    #[arg(long, default_value_t = 5.0)]
    pub round_secs: f64,
    /// The process serving the direct endpoint (on this machine): its CPU time per call in
    /// the direct rounds is reported, e.g. a bare server's cost to compare the gateway's with.
    #[arg(long)]
    pub direct_pid: Option<u32>,
    /// The gateway's process (on this machine): its CPU time per call in the gateway rounds
    /// is reported, and with --direct-pid the ratio of the two.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// The flags both commands share.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Threads, one runtime each (default: the CPUs this process may use, at most --connections).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Connections (each its own MCP session), spread over the threads.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Calls in the first seconds are sent but not measured.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_secs: f64,
    /// Open loop: total calls per second across all connections, on a fixed schedule.
    /// Without it, each connection sends its next call as soon as the last one is answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// The tool to call.
    #[arg(long, default_value = "echo", conflicts_with = "scenario")]
    pub tool: String,
    /// The tool's arguments, a JSON object (default {"message":"hello"}).
    #[arg(long, conflicts_with = "scenario")]
    pub args: Option<String>,
    /// A JSON file with a weighted mix of calls:
    /// {"calls": [{"tool": "echo", "args": {...}, "args_bytes": N, "weight": W}, ...]}
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// An extra request header, 'Name: value' (repeatable), e.g. an Authorization header.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A call (or a connect + handshake) not answered within this many milliseconds fails.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Print one JSON object with every figure on stdout, and no progress on stderr.
    #[arg(long)]
    pub json: bool,
    /// I/O driver of the load threads.
    #[arg(long, value_enum, default_value_t = DriverArg::Auto)]
    pub io_driver: DriverArg,
    /// Busy-poll for this many microseconds after each call instead of sleeping (0 = off):
    /// takes the CPU's wake-up from idle out of the measured latency.
    #[arg(long, default_value_t = 0)]
    pub busy_poll_us: u64,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverArg {
    Auto,
    Uring,
    Epoll,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn scenario_conflicts_with_tool() {
        let r = Cli::try_parse_from([
            "mcpgate-load",
            "run",
            "--url",
            "http://x/mcp",
            "--tool",
            "a",
            "--scenario",
            "s.json",
        ]);
        assert!(r.is_err());
        let r = Cli::try_parse_from([
            "mcpgate-load",
            "run",
            "--url",
            "http://x/mcp",
            "--scenario",
            "s.json",
        ]);
        assert!(r.is_ok());
    }
}
