//! Differential fidelity: random sequences of environment calls run on the
//! real environment (a temporary directory) and on the simulated one, by
//! the same generic code. Results, errors (by errno) and the final tree
//! must be the same. Where they differ, the simulator is wrong.
#![allow(clippy::disallowed_methods)] // the real side needs a temp directory

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use baton_core::env::real::RealEnv;
use baton_core::env::{Env, OpenFile};
use baton_sim::{Scenario, StrategyKind, run};
use proptest::prelude::*;

/// Names the calls use, relative to the root: files, a directory, a file
/// inside it, and a path through a missing directory.
const NAMES: [&str; 6] = ["a", "b", "d", "d/x", "d/y", "m/z"];

#[derive(Clone, Debug)]
enum Op {
    CreateNew(usize),
    CreateUnnamed(usize),
    LinkTo(usize, usize),
    Open(usize, bool),
    Read(usize, u8),
    HardLink(usize, usize),
    Rename(usize, usize),
    RemoveFile(usize),
    ReadDir(usize),
    Metadata(usize),
    SymlinkMetadata(usize),
    CreateDir(usize),
    SyncDir(usize),
    Write(usize, Vec<u8>, u8),
    SetLen(usize, u8),
    ReadAll(usize, u8),
    Fstat(usize),
    TryLock(usize),
    TryLockShared(usize),
    Unlock(usize),
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let handle = 0..4usize;
    prop_oneof![
        name.clone().prop_map(Op::CreateNew),
        name.clone().prop_map(Op::CreateUnnamed),
        (handle.clone(), name.clone()).prop_map(|(h, n)| Op::LinkTo(h, n)),
        (name.clone(), any::<bool>()).prop_map(|(n, c)| Op::Open(n, c)),
        (name.clone(), 0..8u8).prop_map(|(n, l)| Op::Read(n, l)),
        (name.clone(), name.clone()).prop_map(|(a, b)| Op::HardLink(a, b)),
        (name.clone(), name.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        name.clone().prop_map(Op::RemoveFile),
        name.clone().prop_map(Op::ReadDir),
        name.clone().prop_map(Op::Metadata),
        name.clone().prop_map(Op::SymlinkMetadata),
        name.clone().prop_map(Op::CreateDir),
        name.prop_map(Op::SyncDir),
        (
            handle.clone(),
            proptest::collection::vec(any::<u8>(), 0..6),
            0..8u8
        )
            .prop_map(|(h, d, o)| Op::Write(h, d, o)),
        (handle.clone(), 0..8u8).prop_map(|(h, l)| Op::SetLen(h, l)),
        (handle.clone(), 0..8u8).prop_map(|(h, l)| Op::ReadAll(h, l)),
        handle.clone().prop_map(Op::Fstat),
        handle.clone().prop_map(Op::TryLock),
        handle.clone().prop_map(Op::TryLockShared),
        handle.clone().prop_map(Op::Unlock),
        handle.prop_map(Op::Close),
    ]
}

fn outcome<T>(r: std::io::Result<T>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => format!("ok {}", show(v)),
        Err(e) => format!("errno {:?}", e.raw_os_error()),
    }
}

/// Directory sizes and link counts differ between filesystems; files' do not.
fn show_metadata(m: baton_core::env::Metadata) -> String {
    assert_ne!(m.is_dir, m.is_file, "no symlinks or FIFOs are made here");
    if m.is_dir {
        "dir".to_owned()
    } else {
        format!("file len {} nlink {}", m.len, m.nlink)
    }
}

/// Runs `ops` under `root` on any environment; one line per call.
fn apply<E: Env>(env: &E, root: &Path, ops: &[Op]) -> Vec<String> {
    let path = |i: usize| root.join(NAMES[i]);
    let mut handles: Vec<Option<E::File>> = Vec::new();
    let mut out = Vec::new();
    for op in ops {
        let line = match op {
            Op::CreateNew(n) => outcome(env.create_new(&path(*n)), |f| {
                handles.push(Some(f));
                String::new()
            }),
            Op::CreateUnnamed(n) => match env.create_unnamed(&path(*n)) {
                Ok(Some(f)) => {
                    handles.push(Some(f));
                    "ok".to_owned()
                }
                Ok(None) => "unsupported".to_owned(),
                Err(e) => format!("errno {:?}", e.raw_os_error()),
            },
            Op::LinkTo(h, n) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.link_to(&path(*n)), |_| String::new()),
            },
            Op::Open(n, create) => outcome(env.open(&path(*n), *create), |f| {
                handles.push(Some(f));
                String::new()
            }),
            // Limits of 0..8 bytes against files of 0..14: both sides of EFBIG.
            Op::Read(n, limit) => {
                outcome(env.read(&path(*n), u64::from(*limit)), |d| format!("{d:?}"))
            }
            Op::HardLink(a, b) => outcome(env.hard_link(&path(*a), &path(*b)), |_| String::new()),
            Op::Rename(a, b) => outcome(env.rename(&path(*a), &path(*b)), |_| String::new()),
            Op::RemoveFile(n) => outcome(env.remove_file(&path(*n)), |_| String::new()),
            Op::ReadDir(n) => outcome(env.read_dir(&path(*n)), |mut names| {
                names.sort();
                format!("{names:?}")
            }),
            Op::Metadata(n) => outcome(env.metadata(&path(*n)), show_metadata),
            Op::SymlinkMetadata(n) => outcome(env.symlink_metadata(&path(*n)), show_metadata),
            Op::CreateDir(n) => outcome(env.create_dir(&path(*n)), |_| String::new()),
            Op::SyncDir(n) => outcome(env.sync_dir(&path(*n)), |_| String::new()),
            Op::Write(h, data, off) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.write_all_at(data, u64::from(*off)), |_| String::new()),
            },
            Op::SetLen(h, len) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.set_len(u64::from(*len)), |_| String::new()),
            },
            Op::ReadAll(h, limit) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.read_all(u64::from(*limit)), |d| format!("{d:?}")),
            },
            Op::Fstat(h) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.metadata(), |m| format!("len {} nlink {}", m.len, m.nlink)),
            },
            Op::TryLock(h) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.try_lock(), |b| b.to_string()),
            },
            Op::TryLockShared(h) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.try_lock_shared(), |b| b.to_string()),
            },
            Op::Unlock(h) => match handles.get(*h).and_then(Option::as_ref) {
                None => "no handle".into(),
                Some(f) => outcome(f.unlock(), |_| String::new()),
            },
            Op::Close(h) => match handles.get_mut(*h) {
                Some(slot @ Some(_)) => {
                    *slot = None;
                    "closed".into()
                }
                _ => "no handle".into(),
            },
        };
        out.push(format!("{op:?} -> {line}"));
    }
    out.push(format!("tree {:?}", tree(env, root)));
    out
}

/// Every path below `root` with its contents (`None` for directories).
fn tree<E: Env>(env: &E, root: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let mut names = env.read_dir(&root.join(&rel)).expect("tree is readable");
        names.sort();
        for name in names {
            let child = rel.join(name);
            let full = root.join(&child);
            if env.metadata(&full).expect("listed").is_dir {
                out.push((child.clone(), None));
                todo.push(child);
            } else {
                out.push((child, Some(env.read(&full, u64::MAX).expect("listed"))));
            }
        }
    }
    out.sort();
    out
}

fn on_real(ops: &[Op]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    apply(&RealEnv::new().unwrap(), dir.path(), ops)
}

fn on_sim(ops: &[Op]) -> Vec<String> {
    let results = Arc::new(Mutex::new(Vec::new()));
    let (ops, sink) = (ops.to_vec(), Arc::clone(&results));
    let mut s = Scenario::new("fidelity", 1, move |env, _, _| {
        *sink.lock().unwrap() = apply(env, Path::new("/w"), &ops);
    });
    s.setup = Box::new(|fs| {
        fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
            .unwrap();
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    results.lock().unwrap().clone()
}

proptest! {
    // PROPTEST_CASES overrides the count for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn simulated_calls_match_linux(ops in proptest::collection::vec(op(), 1..40)) {
        prop_assert_eq!(on_sim(&ops), on_real(&ops));
    }
}

#[test]
fn a_known_sequence_matches_linux() {
    use Op::*;
    let ops = [
        CreateNew(0),
        Write(0, b"hello".to_vec(), 0),
        HardLink(0, 1),
        CreateDir(2),
        Rename(1, 3),
        RemoveFile(0),
        Fstat(0),
        Open(3, false),
        TryLock(0),
        TryLock(1),
        Close(0),
        TryLock(1),
        Rename(2, 4),
        CreateNew(5),
        RemoveFile(2),
        ReadDir(0),
    ];
    assert_eq!(on_sim(&ops), on_real(&ops));
}

// Regression tests: discrepancies this differential test found.

#[test]
fn rename_resolves_both_parents_before_either_name() {
    use Op::*;
    // Missing source, target under a file: Linux says ENOTDIR, not ENOENT.
    let ops = [Open(2, true), Rename(0, 3)];
    assert_eq!(on_sim(&ops), on_real(&ops));
}

#[test]
fn empty_write_past_the_end_extends_nothing() {
    use Op::*;
    let ops = [CreateNew(0), Write(0, Vec::new(), 1), ReadAll(0, 8)];
    assert_eq!(on_sim(&ops), on_real(&ops));
}

#[test]
fn rename_onto_an_ancestor_is_enotempty() {
    use Op::*;
    let ops = [CreateDir(2), Open(4, true), Rename(4, 2)];
    assert_eq!(on_sim(&ops), on_real(&ops));
}

#[test]
fn shared_locks_coexist_and_exclude_an_exclusive_one() {
    use Op::*;
    let ops = [
        CreateNew(0),
        Open(0, false),
        Open(0, false),
        TryLockShared(0),
        TryLockShared(1),
        TryLock(2),
        Unlock(0),
        TryLock(2),
        Unlock(1),
        TryLock(2),
        TryLockShared(0),
        // Converting a shared lock to exclusive while another shares it
        // fails, and (as Linux does) drops the shared lock it had.
        Unlock(2),
        TryLockShared(0),
        TryLockShared(1),
        TryLock(0),
        TryLock(2),
        Unlock(1),
        TryLock(2),
    ];
    assert_eq!(on_sim(&ops), on_real(&ops));
}
