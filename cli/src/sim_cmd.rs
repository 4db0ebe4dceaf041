//! `baton sim` and `baton verify`: run the simulator over the catalogue and
//! print one verdict per scenario.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use baton_core::catalogue::Expect;
use baton_sim::{
    FaultKinds, Finding, Report, Scenario, StrategyKind, check, replay, scenarios, shrink,
};
use serde_json::json;

use crate::exit::Exit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// Uniformly random choice at every call.
    Random,
    /// Probabilistic concurrency testing (priority-based, few preemptions).
    Pct,
    /// Depth-first enumeration of schedules, fewest preemptions first.
    Dfs,
}

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// A catalogued scenario, or `all`.
    #[arg(long, default_value = "all", value_name = "NAME")]
    pub scenario: String,
    /// How many seeds (schedules, for dfs) to run per scenario.
    #[arg(long, value_name = "N", value_parser = crate::args::positive_count)]
    pub seeds: Option<u64>,
    /// First seed (alone: run just this seed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = StrategyArg::Random)]
    pub strategy: StrategyArg,
    /// PCT's bug depth.
    #[arg(long, default_value_t = 3, value_name = "D")]
    pub pct_depth: u32,
    /// Replay a token printed for a violation: prints its trace and verdict.
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["scenario", "seeds", "seed", "faults"])]
    pub replay: Option<String>,
    /// Fault kinds to draw instead of each scenario's own: `all`, `none`,
    /// or a comma-separated list of crash, machine-crash, pause, io-errors,
    /// clock-skew, pid-reuse, foreign (another tool removing, replacing or
    /// truncating lock files: not in `all`).
    #[arg(long, value_name = "LIST")]
    pub faults: Option<String>,
    /// Print the shrunk trace of every violation found.
    #[arg(long)]
    pub trace: bool,
    /// With --replay: also draw the run as a swimlane diagram (SVG) in
    /// FILE, which must not exist.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
}

/// Seeds per scenario when none are given.
pub const DEFAULT_SEEDS: u64 = 1_000;

/// One scenario's result.
#[derive(Debug)]
pub struct Verdict {
    pub scenario: String,
    pub strategy: &'static str,
    pub expect: Expect,
    pub seeds: u64,
    pub steps: u64,
    pub elapsed: Duration,
    /// The shrunk violation, if one was found.
    pub found: Option<Report>,
    /// A known-bad scenario's violation of another invariant than the one
    /// expected, met on the way (not shrunk).
    pub also: Option<Report>,
    /// `dfs`: whether every schedule within its bounds was run.
    pub exhausted: Option<bool>,
    /// `dfs`: the bound exploration is exhaustive within.
    pub bound: Option<String>,
}

impl Verdict {
    pub fn outcome(&self) -> String {
        match self.found.as_ref().and_then(|r| r.violation.as_ref()) {
            None => "holds".into(),
            Some(v) => format!("violates {}", v.finding),
        }
    }

    /// The other invariant a known-bad scenario broke on the way, if any.
    pub fn also(&self) -> Option<String> {
        let r = self.also.as_ref()?;
        let v = r.violation.as_ref()?;
        Some(format!(
            "also violates {}: {} (replay {})",
            v.finding, v.detail, r.config
        ))
    }

    pub fn matches(&self) -> bool {
        let found = self.found.as_ref().and_then(|r| r.violation.as_ref());
        match (self.expect, found) {
            (Expect::Holds, None) => true,
            (Expect::Violates(i), Some(v)) => v.finding == Finding::Invariant(i),
            _ => false,
        }
    }

    fn per_second(&self, n: u64) -> u64 {
        crate::report::per_second(n, self.elapsed)
    }

    pub fn json(&self) -> serde_json::Value {
        let mut v = json!({
            "scenario": self.scenario,
            "strategy": self.strategy,
            "expected": self.expect.to_string(),
            "outcome": self.outcome(),
            "matches": self.matches(),
            "seeds": self.seeds,
            "schedules_per_s": self.per_second(self.seeds),
            "calls_per_s": self.per_second(self.steps),
        });
        if let Some(exhausted) = self.exhausted {
            v["exhausted"] = json!(exhausted);
        }
        if let Some(bound) = &self.bound {
            v["bound"] = json!(bound);
        }
        if let Some(r) = &self.found
            && let Some(violation) = &r.violation
        {
            v["violation"] = json!({
                "invariant": violation.finding.to_string(),
                "detail": violation.detail,
                "steps": r.steps,
                "replay": r.config.to_string(),
            });
        }
        if let Some(r) = &self.also
            && let Some(violation) = &r.violation
        {
            v["also"] = json!({
                "invariant": violation.finding.to_string(),
                "detail": violation.detail,
                "replay": r.config.to_string(),
            });
        }
        v
    }
}

fn strategy_kind(arg: StrategyArg, depth: u32) -> StrategyKind {
    match arg {
        StrategyArg::Random => StrategyKind::Random,
        StrategyArg::Pct => StrategyKind::Pct { depth },
        StrategyArg::Dfs => StrategyKind::Dfs,
    }
}

/// Wall-clock time of the simulator's own work, for throughput: the
/// simulated processes never see it.
#[allow(clippy::disallowed_methods)]
fn stopwatch() -> impl Fn() -> Duration {
    let start = std::time::Instant::now();
    move || start.elapsed()
}

/// Checks one scenario over `seeds` seeds from `first`, shrinking what it
/// finds.
pub fn check_scenario(s: &Scenario, strategy: StrategyKind, first: u64, seeds: u64) -> Verdict {
    let elapsed = stopwatch();
    let tty = std::io::stderr().is_terminal();
    let mut progress = |done: u64| {
        if tty && (done.is_multiple_of(50) || done == seeds) {
            eprint!("\r{}: {done}/{seeds} seeds", s.name);
            if done == seeds {
                eprint!("\r\x1b[K");
            }
        }
    };
    let (c, exhausted) = if strategy == StrategyKind::Dfs {
        let e = baton_sim::explore::dfs(s, first, seeds, &mut progress);
        (e.check, Some(e.exhausted))
    } else {
        (check(s, strategy, first, seeds, &mut progress), None)
    };
    let elapsed = elapsed();
    if tty {
        eprint!("\r\x1b[K");
    }
    Verdict {
        scenario: s.name.clone(),
        strategy: strategy.name(),
        expect: s.expect,
        seeds: c.seeds,
        steps: c.steps,
        elapsed,
        found: c.failure.map(|f| shrink(s, &f)),
        also: c.other,
        exhausted,
        bound: exhausted.map(|_| baton_sim::explore::bound(s)),
    }
}

pub fn print_table(verdicts: &[Verdict], json: bool, trace: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        for v in verdicts {
            let _ = writeln!(out, "{}", v.json());
        }
        return;
    }
    let _ = writeln!(
        out,
        "{:<20} {:<8} {:<28} {:<28} {:>7} {:>11} {:>11}  first violation",
        "scenario", "strategy", "expected", "outcome", "seeds", "sched/s", "calls/s"
    );
    for v in verdicts {
        let first = match &v.found {
            Some(r) => format!("{} steps, replay {}", r.steps, r.config),
            None if v.exhausted == Some(true) => format!(
                "- (exhausted: {})",
                v.bound.as_deref().unwrap_or("bounded space")
            ),
            None => "-".into(),
        };
        let mark = if v.matches() { "" } else { "  << UNEXPECTED" };
        let also = v
            .also()
            .map_or(String::new(), |a| format!("\n{:<20} {a}", ""));
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:<28} {:<28} {:>7} {:>11} {:>11}  {first}{mark}{also}",
            v.scenario,
            v.strategy,
            v.expect.to_string(),
            v.outcome(),
            v.seeds,
            v.per_second(v.seeds),
            v.per_second(v.steps),
        );
    }
    for v in verdicts {
        if let Some(r) = &v.found
            && (trace || !v.matches())
        {
            let _ = writeln!(out, "\n{} ({}):", v.scenario, r.config);
            for line in &r.trace {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
}

pub fn selected(name: &str) -> anyhow::Result<Vec<Scenario>> {
    if name == "all" {
        return Ok(scenarios::all());
    }
    match scenarios::scenario(name) {
        Some(s) => Ok(vec![s]),
        None => {
            let names: Vec<_> = scenarios::all().into_iter().map(|s| s.name).collect();
            Err(crate::args::UsageError(format!(
                "no scenario {name}: the catalogue has {}",
                names.join(", ")
            ))
            .into())
        }
    }
}

pub fn run(args: SimArgs, json: bool) -> anyhow::Result<Exit> {
    let strategy = strategy_kind(args.strategy, args.pct_depth);
    if args.svg.is_some() && args.replay.is_none() {
        return Err(crate::args::UsageError(
            "--svg draws one run: give its token with --replay".into(),
        )
        .into());
    }
    if let Some(token) = &args.replay {
        return replay_token(token, json, args.svg.as_deref());
    }
    let (first, seeds) = match (args.seed, args.seeds) {
        (Some(s), None) => (s, 1),
        (s, n) => (s.unwrap_or(0), n.unwrap_or(DEFAULT_SEEDS)),
    };
    let mut scenarios = selected(&args.scenario)?;
    if let Some(list) = &args.faults {
        let kinds = FaultKinds::from_names(list)
            .map_err(|e| crate::args::UsageError(format!("--faults: {e}")))?;
        for s in &mut scenarios {
            s.faults = kinds;
        }
    }
    let verdicts: Vec<Verdict> = scenarios
        .iter()
        .map(|s| check_scenario(s, strategy, first, seeds))
        .collect();
    print_table(&verdicts, json, args.trace);
    Ok(if verdicts.iter().all(Verdict::matches) {
        Exit::Ok
    } else {
        Exit::Error
    })
}

fn replay_token(token: &str, json: bool, svg: Option<&std::path::Path>) -> anyhow::Result<Exit> {
    let name = token.split(':').next().unwrap_or_default();
    let s = scenarios::scenario(name).ok_or_else(|| {
        crate::args::UsageError(format!("bad replay token: {token}: no scenario {name}"))
    })?;
    let report = replay(&s, token).map_err(|e| crate::args::UsageError(e.to_string()))?;
    if let Some(path) = svg {
        let diagram = baton_sim::swimlane::Diagram::from_report(&report);
        crate::report::write_new_file(path, diagram.svg().as_bytes())?;
    }
    let verdict = Verdict {
        scenario: s.name.clone(),
        strategy: report.config.strategy.name(),
        expect: s.expect,
        seeds: 1,
        steps: report.steps,
        elapsed: Duration::ZERO,
        found: report.violation.is_some().then(|| report.clone()),
        also: None,
        exhausted: None,
        bound: None,
    };
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = verdict.json();
        v["trace"] = json!(report.trace);
        v["hash"] = json!(format!("{:016x}", report.hash));
        let _ = writeln!(out, "{v}");
    } else {
        for line in &report.trace {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "{}: expected {}, outcome {} (trace hash {:016x})",
            s.name,
            s.expect,
            verdict.outcome(),
            report.hash
        );
    }
    Ok(if verdict.matches() {
        Exit::Ok
    } else {
        Exit::Error
    })
}
