//! Claims under injected I/O errors, seed after seed: an error is
//! reported, never taken for "no claim there". A claim file that could not
//! be opened or read might be a live claim, so a claim must not succeed
//! past it; a claim file that could not be removed is still there, so the
//! call that tried must not say it is gone.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::catalogue::Invariant;
use baton_core::claims::{ClaimRecord, Claimant, Claimed, Claims};
use baton_core::env::{Clock, Fs, Random};
use baton_core::lock::Wait;
use baton_sim::{FaultKinds, StrategyKind, run};

const DIR: &str = "/w/claims";

fn claims() -> Claims {
    Claims::new(DIR, "/w")
}

/// A live claim on `path` by `id` from another host: alive whatever this
/// host's clocks say, never reaped.
fn remote(path: &str, id: &str) -> Vec<u8> {
    let r = ClaimRecord {
        baton: 1,
        path: path.into(),
        id: id.into(),
        task: "elsewhere".into(),
        pid: 7,
        start_time: 7,
        boot_id: "remote-boot".into(),
        pid_ns: 7,
        host: "remote-host".into(),
        claimed_at_ms: 0,
        expires_boot_ms: Some(0),
    };
    format!(
        "{{\"baton\":{},\"path\":\"{}\",\"id\":\"{}\",\"task\":\"{}\",\"pid\":{},\"start_time\":{},\"boot_id\":\"{}\",\"pid_ns\":{},\"host\":\"{}\",\"claimed_at_ms\":{},\"expires_boot_ms\":{}}}\n",
        r.baton,
        r.path,
        r.id,
        r.task,
        r.pid,
        r.start_time,
        r.boot_id,
        r.pid_ns,
        r.host,
        r.claimed_at_ms,
        r.expires_boot_ms.unwrap()
    )
    .into_bytes()
}

#[derive(Clone, Debug, Default)]
struct Seen {
    /// `claim` of a path a live claim holds: what it said.
    overlapping: Option<bool>,
    /// `release` of the remote claim by its own id: Ok?
    release_ok: bool,
}

#[test]
fn claims_under_io_errors_never_take_an_error_for_an_absent_claim() {
    let mut errors_met = 0;
    for seed in 0..600 {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = Arc::clone(&seen);
        let mut s = baton_sim::Scenario::new("claims-faults", 1, move |env, probe, _| {
            let c = claims();
            let me = |id: &str| Claimant {
                id: id.into(),
                task: "t".into(),
                ttl: None,
            };
            let before = probe.injected();
            // First, so that it is the one to reap the torn claim.
            let free_ok = matches!(
                c.claim(env, &["free".into()], &me("me"), Wait::No),
                Ok(Claimed::All(_))
            );
            if free_ok {
                // Checked at once: the next call would reap it again.
                probe.check(
                    |fs, _| match fs.metadata(&Path::new(DIR).join("torn.claim")) {
                        Ok(_) => Err((
                            Invariant::Claims,
                            "a claim succeeded with a dead claim it failed to reap".into(),
                        )),
                        Err(_) => Ok(()),
                    },
                );
            }
            let overlapping = match c.claim(env, &["held/x".into()], &me("me"), Wait::No) {
                Ok(Claimed::All(h)) => {
                    drop(h);
                    Some(true)
                }
                Ok(Claimed::Conflict { .. }) => Some(false),
                Err(_) => None,
            };
            let release_ok = c.release(env, "mine", None, false).is_ok();
            if probe.injected() > before {
                probe.mark("injected");
            }
            *sink.lock().unwrap() = Seen {
                overlapping,
                release_ok,
            };
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        s.fault_budget = 3;
        s.fault_phase = Duration::from_secs(3600);
        s.setup = Box::new(|fs| {
            fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
                .unwrap();
            fs.create_dir(Path::new(DIR), std::time::UNIX_EPOCH)
                .unwrap();
            let t = std::time::UNIX_EPOCH;
            let c = claims();
            fs.put(&c.file_for("held"), &remote("held", "other"), t)
                .unwrap();
            fs.put(&c.file_for("mine"), &remote("mine", "mine"), t)
                .unwrap();
            // What a crash between creating and writing a claim leaves:
            // dead, reaped by the next claimant.
            fs.put(&Path::new(DIR).join("torn.claim"), b"", t).unwrap();
        });
        let checked = Arc::clone(&seen);
        s.end = Box::new(move |fs, _| {
            let seen = checked.lock().unwrap().clone();
            let c = claims();
            let there = |p: &Path| fs.metadata(p).is_ok();
            let fail = |what: String| Err((Invariant::Claims, what));
            if seen.overlapping == Some(true) {
                return fail("a claim succeeded over a live claim it could not read".into());
            }
            if seen.release_ok && there(&c.file_for("mine")) {
                return fail("a release said Ok but the claim is still there".into());
            }
            Ok(())
        });
        let report = run(&s, &s.config(StrategyKind::Random, seed), false);
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        errors_met += report.marks.get("injected").copied().unwrap_or(0);
    }
    // Not vacuous: errors were injected into the claims' calls.
    assert!(errors_met > 100, "{errors_met}");
}

#[test]
fn claims_do_not_fail_because_a_person_removed_claim_files_meanwhile() {
    let mut vanished_mid_call = 0;
    for seed in 0..600 {
        let mut s = baton_sim::Scenario::new("claims-rm", 2, move |env, probe, role| {
            let c = claims();
            if role.index == 1 {
                // A person's `rm`, at a random moment, of a dead claim and
                // of a live one.
                for name in ["torn.claim", &file_name(&c, "mine")] {
                    let nap = env.random_u64() % 3_000;
                    env.sleep(Duration::from_micros(nap));
                    let _ = env.remove_file(&Path::new(DIR).join(name));
                }
                return;
            }
            let me = Claimant {
                id: "me".into(),
                task: "t".into(),
                ttl: None,
            };
            let before = probe.injected();
            match c.claim(env, &["free".into()], &me, Wait::No) {
                Ok(Claimed::All(h)) => drop(h),
                Ok(Claimed::Conflict { .. }) => {
                    probe.violated(Invariant::Claims, "a free path was found claimed")
                }
                Err(e) => probe.error_seen(before, "claim", &e),
            }
            match c.claim(env, &["held/x".into()], &me, Wait::No) {
                Ok(Claimed::All(_)) => {
                    probe.violated(Invariant::Claims, "a held path was claimed again")
                }
                Ok(Claimed::Conflict { .. }) => {}
                Err(e) => probe.error_seen(before, "claim", &e),
            }
            match c.release(env, "mine", None, false) {
                Ok(gone) if !gone.is_empty() => probe.mark("released"),
                Ok(_) => probe.mark("removed-before"),
                Err(e) => probe.error_seen(before, "release", &e),
            }
        });
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.create_dir(Path::new(DIR), t).unwrap();
            let c = claims();
            fs.put(&c.file_for("held"), &remote("held", "other"), t)
                .unwrap();
            fs.put(&c.file_for("mine"), &remote("mine", "mine"), t)
                .unwrap();
            fs.put(&Path::new(DIR).join("torn.claim"), b"", t).unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        // The rm landed inside one of baton's calls on that file: between
        // its listing the directory and its removing the file.
        vanished_mid_call += u32::from(report.trace.iter().any(|l| {
            (l.contains("open(/w/claims/") || l.contains("remove_file(/w/claims/"))
                && l.contains("ENOENT")
        }));
    }
    assert!(vanished_mid_call > 20, "{vanished_mid_call}");
}

fn file_name(c: &Claims, path: &str) -> String {
    c.file_for(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
