//! A dead transaction's scope restored to HEAD, then a machine crash:
//! git writes the work tree without syncing, so the restored files must be
//! made durable before the journal naming the edits goes. After the
//! crash, either the journal is still there (and the next transaction
//! finds the edits and who left them) or the files are as HEAD has them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::atomic::write_atomic;
use baton_core::catalogue::Invariant;
use baton_core::claims::{Claimant, Claims};
use baton_core::env::git::Git;
use baton_core::env::{Fs, OpenFile, Processes};
use baton_core::txn::{self, Recovery};
use baton_sim::fs::{CrashFate, EIO, Failing};
use baton_sim::git::{self as simgit, SimGit, WORK};
use baton_sim::{StrategyKind, run};

const JOURNAL: &str = "/w/.git/baton/txn/7-1-00000001.json";

#[test]
fn restored_files_outlive_the_journal_through_a_machine_crash() {
    assert_eq!(recover_then_crash(false), Ok(()));
}

#[test]
fn a_restored_file_that_cannot_be_synced_fails_the_recovery() {
    let got = recover_then_crash(true);
    assert!(got.is_err(), "{got:?}");
}

/// Recovers a dead transaction's scope (a changed file, an added one),
/// with opening the restored `a.txt` to sync it failing if `sync_fails`;
/// what `recover` returned. The run's end checks the crash.
fn recover_then_crash(sync_fails: bool) -> Result<(), String> {
    let done = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&done);
    let mut s = baton_sim::Scenario::new("txn-recovery", 1, move |env, probe, _| {
        let git = SimGit::new(env);
        let repo = git.repo().unwrap();
        // The dead transaction's edit, durable.
        let a = Path::new(WORK).join("a.txt");
        let f = env.open(&a, false).unwrap();
        f.write_all_at(b"a\nedit\n", 0).unwrap();
        f.sync_all().unwrap();
        drop(f);
        // And a file it added, which HEAD does not have.
        let n = env.open(&Path::new(WORK).join("new.txt"), true).unwrap();
        n.write_all_at(b"added\n", 0).unwrap();
        n.sync_all().unwrap();
        drop(n);
        env.sync_dir(Path::new(WORK)).unwrap();
        // Its journal: another boot of this host, so certainly dead.
        let me = env.identity();
        for d in ["/w/.git/baton", "/w/.git/baton/txn"] {
            let _ = env.create_dir(Path::new(d));
        }
        env.sync_dir(Path::new("/w/.git")).unwrap();
        env.sync_dir(Path::new("/w/.git/baton")).unwrap();
        let journal = format!(
            "{{\"baton\":1,\"txn\":\"7-1-00000001\",\"id\":\"gone\",\"message\":\"m\",\"scope\":[\"a.txt\",\"new.txt\"],\"head\":null,\"pid\":7,\"start_time\":1,\"boot_id\":\"an-old-boot\",\"pid_ns\":{},\"host\":\"{}\",\"started_at_ms\":0}}",
            me.pid_ns, me.host
        );
        write_atomic(env, Path::new(JOURNAL), journal.as_bytes()).unwrap();
        let claims = Claims::new("/w/.git/baton/claims", WORK);
        let rescuer = Claimant {
            id: "rescuer".into(),
            task: "recover".into(),
            ttl: None,
        };
        if sync_fails {
            probe.arrange(|fs| fs.open_fails = Some((a.clone(), Failing::next(EIO, 1))));
        }
        let got = txn::recover(
            env,
            &git,
            &repo,
            &claims,
            "7-1-00000001",
            &rescuer,
            Recovery::Restore,
        );
        *sink.lock().unwrap() = Some(got.map(|_| ()).map_err(|e| e.to_string()));
    });
    s.setup = Box::new(|fs| {
        let t = std::time::UNIX_EPOCH;
        fs.create_dir(Path::new(WORK), t).unwrap();
        simgit::init(fs, t);
        simgit::seed(fs, &[("a.txt", "a\n")], t);
    });
    s.end = Box::new(|fs, _| {
        // Power lost right after: every unsynced file write is gone, and
        // of the directories' unsynced entries, either all reached the
        // disk (as a journaling filesystem may commit them) or only the
        // journal directory's did (its removal of the journal).
        let txn_dir = fs.inode_of(Path::new("/w/.git/baton/txn"));
        for all_dirs in [true, false] {
            let mut after = fs.clone();
            after.crash_with(
                |ino| all_dirs || Some(ino) == txn_dir,
                |_, _| (CrashFate::Durable, 0),
            );
            let journal_left = after.read(Path::new(JOURNAL), 1 << 20).is_ok();
            let a = after
                .read(Path::new("/w/a.txt"), 1 << 20)
                .unwrap_or_default();
            let added = after.read(Path::new("/w/new.txt"), 1 << 20).is_ok();
            if !journal_left && (a != b"a\n" || added) {
                return Err((
                    Invariant::NoCrossCommit,
                    format!(
                        "the journal is gone but a.txt holds {:?} and new.txt is {} after the crash: the next transaction would commit the dead one's edits",
                        String::from_utf8_lossy(&a),
                        if added { "back" } else { "gone" }
                    ),
                ));
            }
        }
        Ok(())
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    done.lock().unwrap().take().expect("recovery ran")
}
