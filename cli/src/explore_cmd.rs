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

/// The interception library: `BATON_INTERCEPT_LIB` if set (a build of
/// one's own), else the copy this binary carries, written into `ws`.
fn preload(ws: &Workspace) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("BATON_INTERCEPT_LIB") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{}: BATON_INTERCEPT_LIB names no file", p.display());
        }
        return Ok(p.canonicalize()?);
    }
    baton_explore::install_intercept(ws.path())
        .with_context(|| format!("{}: writing the interception library", ws.path().display()))
}

pub fn target(
    dir: Option<PathBuf>,
    words: &[OsString],
    timeout: Duration,
    settle_ms: u64,
    ws: &Workspace,
) -> anyhow::Result<Target> {
    let (cmd, check) = split_check(words)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}: the working directory to copy", dir.display()))?;
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    baton_explore::scratch::check_size(&dir)?;
    Ok(Target {
        dir,
        cmd,
        check,
        preload: preload(ws)?,
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
    let mut ws = Workspace::new("explore")?;
    let target = target(
        args.dir.clone(),
        &args.words,
        args.timeout,
        args.settle_ms,
        &ws,
    )?;
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
            ws.keep();
            report_failure(&target, &result, i + 1, as_json);
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

fn report_failure(target: &Target, r: &RunResult, nth: u64, as_json: bool) {
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
        ws.keep();
        if !as_json {
            report_failure(target, &r, 1, false);
        }
        return Ok(Exit::Violation);
    }
    Ok(Exit::Ok)
}

#[derive(Debug, clap::Args)]
pub struct CrashesArgs {
    /// The working directory the run starts from, copied (default: the
    /// current directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Crash states checked at most per crash point (sampled beyond).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub per_point: usize,
    /// Crash states checked at most in all.
    #[arg(long, default_value_t = 2_000, value_name = "N")]
    pub max_states: usize,
    /// Seed for sampling crash states where there are too many.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// The recorded run fails if it has not finished after this long.
    #[arg(long, default_value = "60", value_name = "SECS", value_parser = crate::args::positive_secs)]
    pub timeout: Duration,
    /// Failing states reported in full (all are counted).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub show: usize,
    /// `CMD... --check CHECKCMD...`: the program, and the command whose
    /// non-zero exit in a crash state's directory is a violation.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub words: Vec<OsString>,
}

pub fn crashes(args: CrashesArgs, as_json: bool) -> anyhow::Result<Exit> {
    use baton_explore::crashes::{self, Bounds};
    let mut ws = Workspace::new("crashes")?;
    let target = target(args.dir.clone(), &args.words, args.timeout, 50, &ws)?;
    let start = ws.path().join("start");
    baton_explore::scratch::copy_tree(&target.dir, &start)?;
    let run_dir = ws.path().join("record");
    let root = crashes::prepare(&start, &run_dir)?;
    let launch = baton_explore::session::Launch {
        argv: target.cmd.clone(),
        root: root.clone(),
        copies: 1,
        skew_ns: vec![0],
        record_data: true,
        preload: target.preload.clone(),
        run_dir: run_dir.clone(),
        timeout: target.timeout,
        settle: target.settle,
        quiet: target.quiet,
    };
    let outcome = crashes::record(&launch)?;
    if outcome.timed_out {
        bail!(
            "{}: the recorded run did not finish within {} s",
            show(&target.cmd),
            target.timeout.as_secs()
        );
    }
    if let Some((_, status)) = outcome.failed_copy() {
        let kept = ws.keep();
        bail!(
            "{}: the recorded run exited with {status} (its output: {})",
            show(&target.cmd),
            kept.join("record").display()
        );
    }
    if let Some(why) = explore::check(&target.check, &root, &run_dir, None)? {
        let kept = ws.keep();
        bail!(
            "{}: the check fails on the run's own result, before any crash: {why} (in {})",
            show(&target.check),
            kept.join("record/work").display()
        );
    }
    let unseen = crashes::unaccounted(&start, &outcome.steps, &root)?;
    if !unseen.is_empty() {
        let kept = ws.keep();
        let names: Vec<String> = unseen.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "{}: cannot judge crash states: the run wrote {} through calls the interception does not see (mmap, a printf-family flush, a static binary; see baton-intercept's documentation); its calls are in {}",
            show(&target.cmd),
            names.join(", "),
            kept.join("record/calls.txt").display()
        );
    }
    let bounds = Bounds {
        per_point: args.per_point.max(2),
        max_states: args.max_states.max(1),
        seed: args.seed,
    };
    let (states, points) = crashes::crash_states(&start, &outcome.steps, bounds)?;
    let mut failing = Vec::new();
    for (i, state) in states.iter().enumerate() {
        let dir = ws.path().join(format!("crash{i}"));
        crashes::materialise(state, &start, &dir)?;
        match explore::check(&target.check, &dir, &dir, None)? {
            Some(why) => failing.push((i, why, dir)),
            None => std::fs::remove_dir_all(&dir)?,
        }
    }
    let calls = outcome.steps.len();
    let summary = format!(
        "{} crash states at {points} crash points ({calls} calls recorded)",
        states.len()
    );
    if failing.is_empty() {
        if as_json {
            stdout_line(&json!({"event": "holds", "states": states.len(), "points": points, "calls": calls}).to_string());
        } else {
            stdout_line(&format!("holds over {summary}"));
        }
        return Ok(Exit::Ok);
    }
    ws.keep();
    let call = |i: usize| explore::describe(&outcome.steps[i].call, outcome.steps[i].result);
    let step = |i: usize| format!("#{i} `{}`", call(i));
    // States are checked in crash-point order: how far the first failure is.
    let first = failing[0].0 + 1;
    if as_json {
        stdout_line(
            &json!({"event": "violations", "failing": failing.len(), "states": states.len(),
                "points": points, "calls": calls, "first": first})
            .to_string(),
        );
    } else {
        stdout_line(&format!(
            "VIOLATION in {} of {summary}; the first at state {first}",
            failing.len()
        ));
    }
    for (n, (i, why, dir)) in failing.iter().enumerate() {
        let state = &states[*i];
        let at = state
            .after
            .map_or("before the first call".to_string(), |a| {
                format!("after call #{a} of {calls}, `{}`", call(a))
            });
        if as_json {
            let lost: Vec<_> = state
                .deviations
                .iter()
                .map(|d| json!({"path": d.path, "what": d.what, "by": d.by}))
                .collect();
            stdout_line(&json!({"event": "violation", "after": state.after, "lost": lost, "why": why, "dir": dir}).to_string());
            continue;
        }
        if n >= args.show {
            continue;
        }
        stdout_line(&format!("  crash {at}:"));
        if state.deviations.is_empty() {
            stdout_line(
                "    every call so far reached the disk: the program's own state between two calls",
            );
        }
        for d in &state.deviations {
            let by = d.by.map_or(String::new(), |b| {
                format!("; last changed by {}, not yet durable", step(b))
            });
            stdout_line(&format!("    {}: {}{by}", d.path.display(), d.what));
        }
        stdout_line(&format!("    {why}"));
        stdout_line(&format!("    state kept in {}", dir.display()));
    }
    if !as_json && failing.len() > args.show {
        stdout_line(&format!(
            "  ... and {} more failing states",
            failing.len() - args.show
        ));
    }
    if !as_json {
        stdout_line(&format!(
            "  the recorded calls: {}",
            run_dir.join("calls.txt").display()
        ));
    }
    Ok(Exit::Violation)
}
