//! State files where the real filesystem cannot easily take them: as an
//! unprivileged user (whose chown of a file to anyone else is refused),
//! under injected read errors, and with compare-and-swap losing every
//! round on virtual time.

use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::env::{Fs, OpenFile};
use baton_core::lock::{Mode, Wait};
use baton_core::state::{self, Outcome, StateError, Strategy, UpdateOptions};
use baton_sim::{FaultKinds, StrategyKind, run};

const STATE: &str = "/w/state.json";

type Seen = Arc<Mutex<Option<Result<String, String>>>>;

/// Runs `body` as one process on a tree holding `/w/state.json` (`[]`,
/// owned by `owner`), its processes running as user and group `me`.
fn as_user(
    me: (u32, u32),
    owner: (u32, u32),
    body: impl Fn(&baton_sim::SimEnv<'_>) -> Result<String, String> + Send + Sync + 'static,
) -> Result<String, String> {
    let seen: Seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let mut s = baton_sim::Scenario::new("state-user", 1, move |env, _, _| {
        *sink.lock().unwrap() = Some(body(env));
    });
    s.setup = Box::new(move |fs| {
        let t = std::time::UNIX_EPOCH;
        fs.create_dir(Path::new("/w"), t).unwrap();
        fs.put(Path::new(STATE), b"[]", t).unwrap();
        let ofd = fs.open(Path::new(STATE), false, usize::MAX, t).unwrap();
        fs.set_owner(ofd, owner.0, owner.1).unwrap();
        fs.close(ofd);
        fs.unprivileged = Some(me);
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    seen.lock().unwrap().take().unwrap()
}

fn append_one(env: &baton_sim::SimEnv<'_>) -> Result<String, String> {
    let o = UpdateOptions::new(Strategy::Locked, Mode::Kernel, Wait::No);
    let out = state::update(env, Path::new(STATE), &o, &mut |_| {}, |_| {
        Ok::<_, String>(b"[1]".to_vec())
    })
    .map_err(|e| match e {
        StateError::ForeignOwner { uid, .. } => format!("foreign owner {uid}"),
        other => other.to_string(),
    })?;
    if out != (Outcome::Updated { attempts: 1 }) {
        return Err(format!("{out:?}"));
    }
    let f = env
        .open(Path::new(STATE), false)
        .map_err(|e| e.to_string())?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    let data = env
        .read(Path::new(STATE), 1 << 20)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{} {} {}",
        m.uid,
        m.gid,
        String::from_utf8_lossy(&data)
    ))
}

#[test]
fn another_users_state_file_is_refused_and_ones_own_in_another_group_kept_as_ours() {
    // Owned by someone else: replacing it would give it to us. Refused.
    let got = as_user((1000, 1000), (1234, 1234), append_one);
    assert_eq!(got, Err("foreign owner 1234".to_owned()));
    // Ours, in a group we are not in: kept ours, in our group (as an
    // editor saving it would), updated.
    let got = as_user((1000, 1000), (1000, 99), append_one);
    assert_eq!(got, Ok("1000 1000 [1]".to_owned()));
    // Ours outright: nothing to give back.
    let got = as_user((1000, 1000), (1000, 1000), append_one);
    assert_eq!(got, Ok("1000 1000 [1]".to_owned()));
}

#[test]
fn a_failed_read_of_a_small_state_file_is_an_io_error_never_too_large() {
    let mut failed = 0;
    for seed in 0..4000 {
        let seen: Seen = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&seen);
        let mut s = baton_sim::Scenario::new("state-read", 1, move |env, _, _| {
            let got = state::get(env, Path::new(STATE));
            *sink.lock().unwrap() = Some(match got {
                Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
                Err(StateError::Io(e)) => Err(format!("io: {e}")),
                Err(e) => Err(format!("other: {e}")),
            });
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.put(Path::new(STATE), b"{\"small\":true}", t).unwrap();
        });
        run(&s, &s.config(StrategyKind::Random, seed), false);
        match seen.lock().unwrap().take() {
            Some(Ok(doc)) => assert_eq!(doc, "{\"small\":true}"),
            Some(Err(e)) if e.starts_with("io: ") => failed += 1,
            Some(Err(e)) => panic!("seed {seed}: {e}"),
            None => {}
        }
    }
    assert!(failed > 10, "{failed}");
}

#[test]
fn compare_and_swap_naps_between_attempts_and_not_after_the_last() {
    for max_attempts in [1, 2, 4] {
        let seen: Seen = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&seen);
        let mut s = baton_sim::Scenario::new("state-cas", 1, move |env, _, _| {
            let o = UpdateOptions::new(Strategy::Cas { max_attempts }, Mode::Kernel, Wait::No);
            let mut n = 0;
            let out = state::update(env, Path::new(STATE), &o, &mut |_| {}, |_| {
                // Another writer replaces the file after every read.
                n += 1;
                let f = env.open(Path::new(STATE), false).unwrap();
                f.write_all_at(format!("[{n}]").as_bytes(), 0).unwrap();
                Ok::<_, String>(b"[0]".to_vec())
            })
            .unwrap();
            *sink.lock().unwrap() = Some(Ok(format!("{out:?}")));
        });
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.put(Path::new(STATE), b"[]", t).unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, 0), true);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        assert_eq!(
            seen.lock().unwrap().take().unwrap(),
            Ok(format!("Busy {{ attempts: {max_attempts} }}"))
        );
        let naps = report
            .trace
            .iter()
            .filter(|l| l.contains(" sleep("))
            .count();
        assert_eq!(naps, max_attempts as usize - 1, "{max_attempts} attempts");
    }
}

#[test]
fn an_io_error_giving_the_file_back_fails_the_update() {
    let mut met = 0;
    for seed in 0..3000 {
        let seen: Seen = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&seen);
        let mut s = baton_sim::Scenario::new("state-chown", 1, move |env, _, _| {
            *sink.lock().unwrap() = Some(append_one(env));
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.put(Path::new(STATE), b"[]", t).unwrap();
            let ofd = fs.open(Path::new(STATE), false, usize::MAX, t).unwrap();
            // Ours, in a group we are not in: the owner is given back.
            fs.set_owner(ofd, 1000, 99).unwrap();
            fs.close(ofd);
            fs.unprivileged = Some((1000, 1000));
        });
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        let chown_failed = report
            .trace
            .iter()
            .any(|l| l.contains("set_owner") && !l.ends_with("ok") && !l.ends_with("EPERM"));
        if chown_failed {
            met += 1;
            let got = seen.lock().unwrap().take();
            assert!(
                matches!(got, Some(Err(_)) | None),
                "seed {seed}: {got:?} after an I/O error giving the file back"
            );
        }
    }
    assert!(met > 3, "{met}");
}
