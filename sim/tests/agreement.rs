//! Agreement between the model checker and the simulator: a model's
//! counterexample, turned into a schedule (which process makes which file
//! operation, in which order), replayed against the production-shaped
//! scenario in the simulator, breaks the same invariant.
//!
//! Each model action maps to the call the scenario's process makes for
//! it; the simulator runs each process freely up to its next guided call,
//! so the calls a model folds into one step (open before a write, the
//! sleeps) happen in between. Scenarios that draw random instance ids run
//! with ids pinned to slot order, since the models' ids are their slots.

use baton_core::catalogue::Invariant;
use baton_sim::fault::Site;
use baton_sim::{Finding, GuideStep, Report, StrategyKind, run_guided, scenarios};

/// The (action, process) steps of a counterexample: `" 3. Read(1)  =>  ..."`.
fn steps(counterexample: &[String]) -> Vec<(String, usize)> {
    counterexample[1..]
        .iter()
        .filter_map(|line| {
            let (_, rest) = line.split_once(". ")?;
            let action = rest.split("  =>  ").next()?;
            let (name, arg) = action.split_once('(')?;
            Some((name.to_owned(), arg.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

/// Checks `model` at two instances, expects `invariant` broken, replays
/// its counterexample in the simulator through `site_of`, and returns the
/// model's schedule and the simulator's report.
fn replay(
    model: &str,
    invariant: Invariant,
    iters: Option<u32>,
    site_of: fn(&str) -> Site,
) -> (Vec<GuideStep>, Report) {
    let verdict = baton_model::check(model, 2).unwrap();
    let guide = steps(&verdict.counterexample)
        .into_iter()
        .map(|(action, p)| GuideStep::Call(p, site_of(&action)))
        .collect();
    replay_guide(model, &verdict, invariant, 2, iters, guide)
}

/// Replays `guide` (derived from `verdict`'s counterexample) against the
/// scenario `model` with `procs` processes and no drawn faults.
fn replay_guide(
    model: &str,
    verdict: &baton_model::Verdict,
    invariant: Invariant,
    procs: usize,
    iters: Option<u32>,
    guide: Vec<GuideStep>,
) -> (Vec<GuideStep>, Report) {
    assert_eq!(verdict.violated, Some(invariant), "{verdict:#?}");
    assert!(!guide.is_empty());
    let mut scenario = scenarios::scenario(model).unwrap();
    scenario.faults = baton_sim::FaultKinds::NONE;
    scenario.pinned_ids = true;
    // The models do not restart crashed processes.
    scenario.max_restarts = 0;
    let defaults = scenario.config(StrategyKind::Random, 0);
    let config = baton_sim::Config {
        procs,
        iters: iters.unwrap_or(defaults.iters),
        ..defaults
    };
    let report = run_guided(&scenario, &config, true, guide.clone());
    let guide = guide.as_slice();
    let Some(v) = report.violation.as_ref() else {
        panic!(
            "the model's schedule must break the production scenario:\n{guide:?}\n{}",
            report.trace.join("\n")
        )
    };
    assert_eq!(
        v.finding,
        Finding::Invariant(invariant),
        "{}",
        report.trace.join("\n")
    );
    (guide.to_vec(), report)
}

/// The trace's calls on `path`: those naming it, and writes through
/// descriptors opened on it (the rest of the trace is other files).
fn calls_on<'r>(report: &'r Report, path: &str, calls: &[&str]) -> Vec<&'r String> {
    let mut fds = Vec::new();
    report
        .trace
        .iter()
        .filter(|l| {
            if l.contains(&format!("open({path}")) {
                if let Some((_, fd)) = l.rsplit_once("-> ") {
                    fds.push(fd.to_owned());
                }
                return false;
            }
            calls.iter().any(|c| {
                l.contains(&format!("{c}({path}"))
                    || fds.iter().any(|fd| l.contains(&format!("{c}({fd})")))
            })
        })
        .collect()
}

/// The guided calls, in trace order, are made by the processes the
/// model's schedule names, in its order.
fn assert_followed(calls: &[&String], guide: &[GuideStep]) {
    assert_eq!(calls.len(), guide.len(), "{calls:#?}");
    for (call, p) in calls.iter().zip(guide.iter().map(|s| s.process())) {
        assert!(
            call.contains(&format!(" p{p} ")),
            "p{p} expected: {calls:#?}"
        );
    }
}

#[test]
fn registry_rmw_model_counterexample_breaks_single_primary_in_the_simulator() {
    let (guide, report) = replay(
        "registry-rmw",
        Invariant::SinglePrimary,
        Some(1),
        |a| match a {
            "Read" => Site::Read,
            "WriteIfEmpty" => Site::WriteAllAt,
            other => panic!("unmapped model action {other}"),
        },
    );
    assert_eq!(guide.len(), 4, "{guide:?}");
    // Both read before either writes, in the model's process order.
    let calls: Vec<&String> = report
        .trace
        .iter()
        .filter(|l| l.contains("read(/w/plugin.lock)") || l.contains("write_all_at"))
        .collect();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert!(
        calls[0].contains("read") && calls[1].contains("read"),
        "{calls:#?}"
    );
    assert_followed(
        &calls_on(&report, "/w/plugin.lock", &["read", "write_all_at"]),
        &guide,
    );
}

#[test]
fn registry_150ms_model_counterexample_breaks_single_primary_in_the_simulator() {
    // Read and Decide are both reads of the list; Write is the overwrite.
    let (guide, report) = replay(
        "registry-150ms",
        Invariant::SinglePrimary,
        None,
        |a| match a {
            "Read" | "Decide" => Site::Read,
            "Write" => Site::WriteAllAt,
            other => panic!("unmapped model action {other}"),
        },
    );
    assert_followed(
        &calls_on(
            &report,
            "/w/plugin-instances.json",
            &["read", "write_all_at"],
        ),
        &guide,
    );
}

#[test]
fn dir_election_model_counterexample_breaks_single_primary_in_the_simulator() {
    // The late joiner with the smaller id: slot 1 lists the directory
    // alone; slot 0 joins, lists both and is primary; slot 1 then finishes
    // its round primary too.
    let (guide, report) = replay(
        "dir-election",
        Invariant::SinglePrimary,
        None,
        |a| match a {
            "Create" => Site::CreateNew,
            "Touch" => Site::SetModified,
            "ReadDir" => Site::ReadDir,
            "Stat" => Site::Metadata,
            "Remove" | "Leave" => Site::RemoveFile,
            other => panic!("unmapped model action {other}"),
        },
    );
    assert_eq!(guide[0], GuideStep::Call(1, Site::CreateNew), "{guide:?}");
    // Up to the violation: the instances go on with later rounds after
    // the model's counterexample ends.
    let calls = calls_on(
        &report,
        "/w/.plugin-instances",
        &[
            "create_new",
            "set_modified",
            "read_dir",
            "metadata",
            "remove_file",
        ],
    );
    assert_followed(&calls[..guide.len().min(calls.len())], &guide);
}

#[test]
fn naive_reap_double_reaper_from_the_model_breaks_mutual_exclusion_in_the_simulator() {
    use baton_model::naive_reap::{Faults, check_with};
    // The model's double reaper: three processes, one crash, no skew or
    // pause. Ticks (no process, so not among the steps) are the
    // simulator's own polling sleeps; a stale
    // judgement is the process reaching its `remove_file`.
    let verdict = check_with(
        3,
        Faults {
            crashes: 1,
            pauses: 0,
            skew: 0,
        },
    );
    let guide: Vec<GuideStep> = steps(&verdict.counterexample)
        .into_iter()
        .map(|(action, p)| match action.as_str() {
            "CreateExclusive" => GuideStep::Call(p, Site::CreateNew),
            "Stat" => GuideStep::Reach(p, Site::RemoveFile),
            "Unlink" | "Release" => GuideStep::Call(p, Site::RemoveFile),
            "Crash" => GuideStep::Crash(p),
            other => panic!("unmapped model action {other}"),
        })
        .collect();
    let (guide, report) = replay_guide(
        "naive-reap",
        &verdict,
        Invariant::MutualExclusion,
        3,
        Some(1),
        guide,
    );
    // The two reapers unlink in the model's order, the second after the
    // first re-created the lock: it removes a live holder's lock.
    let removes: Vec<&String> = report
        .trace
        .iter()
        .filter(|l| l.contains("remove_file(/w/counter.lock)"))
        .collect();
    let unlinkers: Vec<usize> = guide
        .iter()
        .filter_map(|s| match s {
            GuideStep::Call(p, Site::RemoveFile) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(unlinkers.len(), 2, "{guide:?}");
    for (line, p) in removes.iter().zip(&unlinkers) {
        assert!(line.contains(&format!(" p{p} ")), "{removes:#?}");
    }
    assert!(report.trace.iter().any(|l| l.contains("CRASH (guided)")));
}

#[test]
fn state_rmw_unlocked_model_counterexample_loses_an_update_in_the_simulator() {
    let verdict = baton_model::check("state-rmw-unlocked", 2).unwrap();
    // Acknowledging is the caller's business, not a file operation.
    let guide: Vec<GuideStep> = steps(&verdict.counterexample)
        .into_iter()
        .filter(|(action, _)| action != "Ack")
        .map(|(action, p)| {
            let site = match action.as_str() {
                "Read" => Site::Read,
                "Rename" => Site::Rename,
                other => panic!("unmapped model action {other}"),
            };
            GuideStep::Call(p, site)
        })
        .collect();
    let (guide, report) = replay_guide(
        "state-rmw-unlocked",
        &verdict,
        Invariant::NoLostUpdate,
        2,
        Some(1),
        guide,
    );
    assert_eq!(guide.len(), 4, "{guide:?}");
    let calls: Vec<&String> = report
        .trace
        .iter()
        .filter(|l| l.contains("read(/w/state.json)") || l.contains("rename("))
        .collect();
    assert_followed(&calls, &guide);
}

#[test]
fn claims_shared_json_model_counterexample_double_claims_in_the_simulator() {
    let (guide, report) = replay(
        "claims-shared-json",
        Invariant::Claims,
        Some(1),
        |a| match a {
            "ReadList" => Site::Read,
            // The list is written atomically: the rename publishes it.
            "WriteList" => Site::Rename,
            other => panic!("unmapped model action {other}"),
        },
    );
    assert_eq!(guide.len(), 4, "{guide:?}");
    let calls: Vec<&String> = report
        .trace
        .iter()
        .filter(|l| l.contains("read(/w/ACTIVE-TASKS)") || l.contains("rename("))
        .collect();
    assert_followed(&calls[..4], &guide);
}

/// The commit models' actions as the field scenarios' calls: an edit is
/// the in-place save's last call, which trims the file to what was written
/// (nothing else in those scenarios sets a length), `git add` and `git
/// commit` are one git command each, and the seed's lock is its kernel
/// lock.
fn commit_site(action: &str) -> Site {
    match action {
        "EditOwn" | "EditShared" => Site::SetLen,
        "Add" | "Commit" => Site::Git,
        "Lock" => Site::TryLock,
        other => panic!("unmapped model action {other}"),
    }
}

#[test]
fn commit_models_counterexamples_cross_commits_in_the_simulator() {
    for model in ["commit-shared-index", "commit-lock-staging"] {
        let (guide, report) = replay(model, Invariant::NoCrossCommit, Some(1), commit_site);
        // As in the model: task 1's commit carries task 0's edit of the
        // shared file, which task 0 never committed itself by then.
        let v = report.violation.as_ref().unwrap();
        assert!(
            v.detail.contains("commit of task p1-")
                && v.detail.contains("\"p0-")
                && v.detail.contains("TODO.md"),
            "{model}: {}",
            v.detail
        );
        // The model's steps, made by its processes in its order. (Under
        // the shared index, p0's own `git add` may land in the 2 ms that
        // p1's `git commit` takes to start: not a guided step.)
        let calls: Vec<&String> = report
            .trace
            .iter()
            .filter(|l| {
                ["set_len(", "try_lock(", "git add", "git commit"]
                    .iter()
                    .any(|c| l.contains(c))
            })
            .filter(|l| !(l.contains(" p0 ") && l.contains("git add")))
            .collect();
        assert_followed(&calls[..guide.len()], &guide);
    }
}
