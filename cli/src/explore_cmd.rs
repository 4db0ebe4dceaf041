//! `baton explore` and `baton crashes`: check the user's own program, run
//! for real under the interception library (see `baton-explore`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use baton_explore::explore::{self, Faults, Plan, RunResult, Target};
use baton_explore::scratch::Workspace;
use baton_sim::StrategyKind;
use serde_json::json;

use crate::exit::Exit;
use crate::report::{per_second, stdout_line};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExploreStrategy {
    Random,
    Pct,
}

#[derive(Debug, clap::Args)]
pub struct ExploreArgs {
    /// How many runs (with --replay: how many times to repeat it).
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = crate::args::positive_count)]
    pub runs: u64,
    #[arg(long, value_enum, default_value_t = ExploreStrategy::Pct)]
    pub strategy: ExploreStrategy,
    /// PCT's bug depth.
    #[arg(long, default_value_t = 3, value_name = "D")]
    pub pct_depth: u32,
    /// How many copies of CMD run at once.
    #[arg(short = 'n', long = "procs", default_value_t = 2, value_name = "PROCS",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub procs: u32,
    /// First seed; run i uses seed S + i.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Kill one copy (its whole process group) at a drawn call.
    #[arg(long)]
    pub kill: bool,
    /// Hold one copy at a drawn call for 50 ms to 1 s while the others run.
    #[arg(long)]
    pub pause: bool,
    /// Run one copy's wall clock 1 to 30 s ahead or behind.
    #[arg(long)]
    pub skew: bool,
    /// The working directory each run starts from, copied afresh (default:
    /// the current directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// A run that has not finished after this long fails.
    #[arg(long, default_value = "30", value_name = "SECS", value_parser = crate::args::positive_secs)]
    pub timeout: Duration,
    /// How long a thread may compute between calls before the scheduler
    /// stops waiting for it.
    #[arg(long, default_value = "50", value_name = "MS")]
    pub settle_ms: u64,
    /// Repeat one run from its token.
    #[arg(long, value_name = "TOKEN")]
    pub replay: Option<String>,
    /// Keep every run's directory, not only a failing one's.
    #[arg(long)]
    pub keep: bool,
    /// `CMD... --check CHECKCMD...`: the program, and the command whose
    /// non-zero exit in the run's directory is a violation.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub words: Vec<OsString>,
}

/// Splits `CMD... --check CHECK...`.
fn split_check(words: &[OsString]) -> anyhow::Result<(Vec<OsString>, Vec<OsString>)> {
    let Some(at) = words.iter().position(|w| w == "--check") else {
        bail!(crate::args::UsageError(
            "expected `-- CMD... --check CHECKCMD...`".into()
        ));
    };
    let (cmd, check) = (words[..at].to_vec(), words[at + 1..].to_vec());
    if cmd.is_empty() || check.is_empty() {
        bail!(crate::args::UsageError(
            "both CMD and CHECKCMD must be given: `-- CMD... --check CHECKCMD...`".into()
        ));
    }
    Ok((cmd, check))
}

/// The interception library: `BATON_INTERCEPT_LIB`, or beside this
/// executable (where `cargo build` puts it).
pub fn preload() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("BATON_INTERCEPT_LIB") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("where is baton")?;
    let dir = exe.parent().context("baton's directory")?;
    for candidate in [
        dir.join("libbaton_intercept.so"),
        dir.join("../libbaton_intercept.so"),
    ] {
        if candidate.is_file() {
            return Ok(candidate.canonicalize()?);
        }
    }
    bail!(
        "{}: libbaton_intercept.so not found beside baton (build it with `cargo build --workspace`, or name it in BATON_INTERCEPT_LIB)",
        dir.display()
    )
}

pub fn target(
    dir: Option<PathBuf>,
    words: &[OsString],
    timeout: Duration,
    settle_ms: u64,
) -> anyhow::Result<Target> {
    let (cmd, check) = split_check(words)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: the working directory to copy", dir.display()))?;
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    Ok(Target {
        dir,
        cmd,
        check,
        preload: preload()?,
        timeout,
        settle: Duration::from_millis(settle_ms),
        quiet: Duration::from_millis(2),
    })
}

fn show(words: &[OsString]) -> String {
    words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn faults_named(f: Faults) -> String {
    let mut names = Vec::new();
    for (on, name) in [(f.kill, "kill"), (f.pause, "pause"), (f.skew, "skew")] {
        if on {
            names.push(name);
        }
    }
    if names.is_empty() {
        "no faults".into()
    } else {
        names.join("+")
    }
}

pub fn run(args: ExploreArgs, as_json: bool) -> anyhow::Result<Exit> {
    let target = target(args.dir.clone(), &args.words, args.timeout, args.settle_ms)?;
    let mut ws = Workspace::new("explore")?;
    if let Some(token) = &args.replay {
        let plan = Plan::parse(token).map_err(crate::args::UsageError)?;
        return replay(&target, &plan, args.runs, &mut ws, as_json);
    }
    let strategy = match args.strategy {
        ExploreStrategy::Random => StrategyKind::Random,
        ExploreStrategy::Pct => StrategyKind::Pct {
            depth: args.pct_depth.max(1),
        },
    };
    let faults = Faults {
        kill: args.kill,
        pause: args.pause,
        skew: args.skew,
    };
    let copies = args.procs as usize;
    let mut took = Duration::ZERO;
    // A first run without faults measures how many calls each copy makes:
    // faults are then placed among them, and PCT's change points too.
    let mut calls: Vec<u64> = vec![1; copies];
    let mut scheduled = 0u64;
    for i in 0..args.runs {
        let seed = args.seed.wrapping_add(i);
        let plan = if i == 0 {
            Plan {
                kill: None,
                pause: None,
                skew: None,
                ..explore::draw(
                    strategy,
                    copies,
                    seed,
                    Faults::default(),
                    &[200; 64][..copies],
                )
            }
        } else {
            explore::draw(strategy, copies, seed, faults, &calls)
        };
        let result = explore::run_plan(&target, &plan, &ws, i as usize)?;
        scheduled += result.outcome.steps.len() as u64;
        took += result.outcome.elapsed;
        if i == 0 {
            calls = result.outcome.calls.iter().map(|&c| c.max(1)).collect();
        }
        if result.failure.is_some() {
            let kept = ws.keep();
            report_failure(&target, &result, i + 1, &kept, as_json);
            return Ok(Exit::Violation);
        }
        if !args.keep {
            let _ = std::fs::remove_dir_all(&result.dir);
        }
    }
    if args.keep {
        ws.keep();
    }
    if as_json {
        stdout_line(
            &json!({"event": "holds", "runs": args.runs, "procs": copies,
            "strategy": strategy.name(), "faults": faults_named(faults),
            "calls": scheduled, "calls_per_sec": per_second(scheduled, took),
            "seconds": took.as_secs_f64()})
            .to_string(),
        );
    } else {
        stdout_line(&format!(
            "holds over {} runs of {copies} copies ({}, {}): {scheduled} calls scheduled, {}/s, {:.1} s",
            args.runs,
            strategy.name(),
            faults_named(faults),
            per_second(scheduled, took),
            took.as_secs_f64()
        ));
    }
    Ok(Exit::Ok)
}

fn report_failure(target: &Target, r: &RunResult, nth: u64, kept: &std::path::Path, as_json: bool) {
    let token = r.plan.token();
    let why = r.failure.as_deref().unwrap_or_default();
    if as_json {
        stdout_line(
            &json!({"event": "violation", "run": nth, "token": token, "why": why,
            "calls": r.outcome.steps.len(), "dir": r.dir})
            .to_string(),
        );
        return;
    }
    stdout_line(&format!(
        "VIOLATION in run {nth} ({} calls scheduled): {why}",
        r.outcome.steps.len()
    ));
    if let Some(c) = r.outcome.killed {
        stdout_line(&format!(
            "  copy {c} was killed at its call {}",
            r.plan.kill.map_or(0, |k| k.1)
        ));
    }
    let from = r.outcome.steps.len().saturating_sub(12);
    if from < r.outcome.steps.len() {
        stdout_line("  the last calls, in the order they ran:");
    }
    for (i, s) in r.outcome.steps.iter().enumerate().skip(from) {
        stdout_line(&format!(
            "    #{i:<4} copy {} {}",
            s.copy,
            explore::describe(&s.call, s.result)
        ));
    }
    stdout_line(&format!("  run directory: {}", r.dir.display()));
    let _ = kept;
    stdout_line(&format!(
        "  replay: baton explore --replay {token} -- {} --check {}",
        show(&target.cmd),
        show(&target.check)
    ));
}

fn replay(
    target: &Target,
    plan: &Plan,
    times: u64,
    ws: &mut Workspace,
    as_json: bool,
) -> anyhow::Result<Exit> {
    let mut failed = 0;
    let mut first: Option<RunResult> = None;
    for i in 0..times {
        let r = explore::run_plan(target, plan, ws, i as usize)?;
        if r.failure.is_some() {
            failed += 1;
            if first.is_none() {
                first = Some(r);
                continue;
            }
        }
        let _ = std::fs::remove_dir_all(ws.path().join(format!("run{i}")));
    }
    if as_json {
        stdout_line(
            &json!({"event": "replay", "token": plan.token(), "runs": times, "failed": failed})
                .to_string(),
        );
    } else {
        stdout_line(&format!(
            "replay {}: failed in {failed} of {times} runs",
            plan.token()
        ));
    }
    if let Some(r) = first {
        let kept = ws.keep();
        if !as_json {
            report_failure(target, &r, 1, &kept, false);
        }
        return Ok(Exit::Violation);
    }
    Ok(Exit::Ok)
}
