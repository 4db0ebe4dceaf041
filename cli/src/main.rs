//! `baton`: coordinate processes that share a working directory.
//!
//! `main` parses the command line and delegates to `run`; every error ends
//! as one line on stderr, `baton: <what failed>: <path>: <cause>`, and a
//! documented exit code (see [`exit::Exit`]).

mod args;
mod child;
mod claim_cmd;
mod commit_cmd;
mod elect_cmd;
mod etcd_cmd;
mod exit;
mod explore_cmd;
mod guard_cmd;
mod lock_cmd;
mod mcp_cmd;
mod model_cmd;
mod report;
mod sim_cmd;
mod state_cmd;
mod status_cmd;
mod txn_cmd;
mod verify_cmd;
mod watchdog;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::Exit;
use crate::report::Reporter;

/// Coordinate processes that share a working directory: locks, shared
/// state, per-path claims, primary election, proven race-free by
/// simulation and model checking.
#[derive(Debug, Parser)]
#[command(name = "baton", version)]
struct Cli {
    /// Print one JSON object per event instead of human lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run CMD holding FILE's lock (FILE.baton.lock); exit with CMD's status,
    /// or 75 if the lock was not obtained in time.
    Lock(lock_cmd::LockArgs),
    /// Read or update a JSON state file: `state get FILE`,
    /// `state update [--cas] FILE -- CMD...` (CMD maps stdin to stdout).
    State(state_cmd::StateArgs),
    /// Campaign for primary: print events as JSON lines (joined, standby,
    /// elected, stepped-down) until stdin closes, or run CMD while primary.
    Elect(elect_cmd::ElectArgs),
    /// Claim paths for this instance, all or nothing (exit 75 naming the
    /// holder if any is claimed): held while CMD runs, or detached with a
    /// TTL.
    Claim(claim_cmd::ClaimArgs),
    /// Release this instance's claims (all, or the PATHs given).
    Release(claim_cmd::ReleaseArgs),
    /// May I edit PATH? `PATH: free` (exit 0), or who claims it (exit 75).
    Who(claim_cmd::WhoArgs),
    /// What is going on: the election's primary and members, every claim
    /// with its instance and task (`--watch` to follow).
    Status(status_cmd::StatusArgs),
    /// Commit exactly PATH... onto the current branch, nothing else that is
    /// staged, with no global lock (exit 75 if other commits kept landing
    /// first).
    Commit(commit_cmd::CommitArgs),
    /// Claim the scope, check it matches HEAD, run CMD, commit exactly the
    /// scope, release: overlapping scopes serialise, disjoint ones run in
    /// parallel (`--list`, `--recover TXN` for dead ones).
    Txn(txn_cmd::TxnArgs),
    /// Edit guard for coding agents' pre-tool-use hooks: reads the tool
    /// call on stdin, denies an edit of a file another instance claims
    /// (naming it), and with --claim claims the files for the caller.
    Guard(guard_cmd::GuardArgs),
    /// Serve the Model Context Protocol over stdio: claim, release, who,
    /// status, state_get, state_update and commit as tools for an agent.
    Mcp(mcp_cmd::McpArgs),
    /// Remove the member files of dead instances, saying why.
    Reap(elect_cmd::ReapArgs),
    /// Run the deterministic simulator over the catalogue (or one
    /// scenario); exit 0 only when every outcome matches its expectation.
    Sim(sim_cmd::SimArgs),
    /// Check the stateright models exhaustively; exit 0 only when every
    /// verdict matches its expectation.
    Model(model_cmd::ModelArgs),
    /// Check your own program: run PROCS copies of CMD in scratch copies of
    /// the directory, schedule their file-system calls (random or PCT, with
    /// kills, pauses and clock skew), run CHECKCMD on the result; exit 3
    /// with a replay token on the first failing run.
    Explore(explore_cmd::ExploreArgs),
    /// Check your own program against machine crashes: record one run of
    /// CMD, rebuild every state a crash could leave at every point of it
    /// (unsynced data lost, torn or empty; unsynced directory entries lost
    /// or written back), run CHECKCMD on each; exit 3 naming the call that
    /// was not yet durable.
    Crashes(explore_cmd::CrashesArgs),
    /// Check the whole catalogue (simulator with random, PCT and DFS
    /// schedules, then the models) and print the verdict tables.
    Verify(verify_cmd::VerifyArgs),
    /// (internal) Kill process PID unless told every MS milliseconds that
    /// its etcd lease still holds (see `watchdog.rs`).
    #[command(name = "__watchdog", hide = true)]
    Watchdog { pid: i32, ms: u64 },
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let report = Reporter { json: cli.json };
    match cli.command {
        Command::Lock(args) => lock_cmd::run(args, report),
        Command::State(args) => state_cmd::run(args, report),
        Command::Elect(args) => elect_cmd::elect(args, cli.json),
        Command::Claim(args) => claim_cmd::claim(args, cli.json),
        Command::Release(args) => claim_cmd::release(args, cli.json),
        Command::Who(args) => claim_cmd::who(args, cli.json),
        Command::Status(args) => status_cmd::run(args, cli.json),
        Command::Commit(args) => commit_cmd::run(args, report),
        Command::Txn(args) => txn_cmd::run(args, cli.json),
        Command::Guard(args) => guard_cmd::run(args),
        Command::Mcp(args) => mcp_cmd::run(args),
        Command::Reap(args) => elect_cmd::reap(args, cli.json),
        Command::Sim(args) => sim_cmd::run(args, cli.json),
        Command::Model(args) => model_cmd::run(args, cli.json),
        Command::Verify(args) => verify_cmd::run(args, cli.json),
        Command::Explore(args) => explore_cmd::run(args, cli.json),
        Command::Crashes(args) => explore_cmd::crashes(args, cli.json),
        Command::Watchdog { pid, ms } => watchdog::run(pid, ms),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Ok.code()
            });
        }
    };
    match run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            report::error_line(&format!("{e:#}"));
            let code = if e.downcast_ref::<args::UsageError>().is_some() {
                Exit::Usage
            } else {
                Exit::Error
            };
            ExitCode::from(code.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use proptest::prelude::*;

    use super::Cli;

    /// Words a command line is made of, right and wrong.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "lock",
                "elect",
                "status",
                "reap",
                "sim",
                "model",
                "verify",
                "claim",
                "release",
                "who",
                "state",
                "get",
                "update",
                "--cas",
                "--attempts",
                "--task",
                "--force",
                "--claims",
                "--watch",
                "--",
                "-w",
                "-n",
                "--stale",
                "--mode",
                "--id",
                "--dir",
                "--ttl",
                "--hand-over",
                "--json",
                "--seeds",
                "--seed",
                "--replay",
                "--instances",
                "--model",
                "--scenario",
                "--strategy",
                "--faults",
                "--dry-run",
                "kernel",
                "file",
                "lease",
                "auto",
                "0",
                "-1",
                "NaN",
                "inf",
                "1e300",
                "0.1",
                "18446744073709551616",
                "../../x",
                "",
                "a\nb",
                "true",
            ])
            .prop_map(str::to_owned),
            ".{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn any_argument_vector_parses_or_is_refused_without_panic(
            argv in proptest::collection::vec(word(), 0..8)
        ) {
            let _ = Cli::try_parse_from(std::iter::once("baton".to_owned()).chain(argv));
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
