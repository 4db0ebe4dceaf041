//! The in-process staging, commit writing and ref update of `CliGit`
//! against git's own plumbing, on the same repositories: random work-tree
//! edits in nested directories (symlinks, executable bits, deletions,
//! directories emptied and made), packed and loose, every staging done
//! both ways and compared; and the object reader against `git cat-file`
//! on every object of a packed repository with delta chains.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use baton_core::env::git::{Git, RefUpdate};
use baton_core::env::real_git::CliGit;
use baton_core::env::real_git::objects::{self, Kind, Objects};
use proptest::prelude::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_bytes(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    out.stdout
}

fn init(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "In Process"]);
    git(dir, &["config", "user.email", "ip@example.com"]);
    git(dir, &["config", "commit.gpgSign", "false"]);
}

#[test]
fn every_object_of_a_packed_repository_with_deltas_reads_as_git_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d);
    std::fs::create_dir_all(d.join("src/deep")).unwrap();
    // Similar trees and blobs across commits: git gc deltifies them.
    for round in 0..12 {
        for i in 0..20 {
            let body: String = (0..40).map(|l| format!("line {l} of file {i}\n")).collect();
            std::fs::write(
                d.join(format!("src/deep/f{i}.txt")),
                format!("{body}round {round}\n"),
            )
            .unwrap();
        }
        git(d, &["add", "-A"]);
        git(d, &["commit", "-qm", &format!("round {round}")]);
    }
    git(d, &["gc", "-q", "--aggressive"]);
    let packs: Vec<_> = std::fs::read_dir(d.join(".git/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    assert_eq!(packs.len(), 1, "gc made one pack");
    let verify = git(d, &["verify-pack", "-v", packs[0].to_str().unwrap()]);
    assert!(
        verify.contains("chain length = 1"),
        "the pack has deltas, or this test reads none:\n{verify}"
    );

    let store = Objects::new(d.join(".git/objects"));
    let listing = git(d, &["cat-file", "--batch-all-objects", "--batch-check"]);
    let mut by_kind = BTreeMap::new();
    for line in listing.lines() {
        let mut f = line.split(' ');
        let (id, kind) = (f.next().unwrap(), f.next().unwrap());
        let want = git_bytes(d, &["cat-file", kind, id]);
        let (got_kind, got) = store
            .read(&objects::from_hex(id).unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("{id} not found"));
        let got_kind = format!("{got_kind:?}").to_lowercase();
        assert_eq!((got_kind.as_str(), &got), (kind, &want), "{id}");
        *by_kind.entry(kind.to_owned()).or_insert(0) += 1;
    }
    assert!(
        by_kind["tree"] >= 24 && by_kind["commit"] == 12,
        "{by_kind:?}"
    );
    // A name nobody has is absent, not an error.
    assert!(
        store
            .read(&objects::id_of(Kind::Blob, b"nowhere"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn content_git_would_transform_is_staged_by_git() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d);
    std::fs::write(d.join("a.txt"), "one\n").unwrap();
    std::fs::write(d.join("b.md"), "one\r\n").unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "init"]);
    std::fs::write(d.join(".gitattributes"), "*.txt filter=upper\n").unwrap();
    git(d, &["config", "filter.upper.clean", "tr a-z A-Z"]);
    std::fs::write(d.join("a.txt"), "two\n").unwrap();

    let fast = CliGit::new(d);
    fast.repo().unwrap();
    let head = fast.head(&fast.repo().unwrap()).unwrap();
    let index = d.join(".git/idx-test");
    let staged = fast
        .stage(&index, head.commit.as_deref(), &["a.txt".to_owned()])
        .unwrap();
    assert_eq!(
        fast.in_process_steps(),
        0,
        "an attributes file sends staging to git"
    );
    let blob = &staged.changes[0].new.as_ref().unwrap().oid;
    assert_eq!(
        git(d, &["cat-file", "blob", blob]),
        "TWO\n",
        "the clean filter ran"
    );

    // core.autocrlf, with no attributes file: also git's (a new file's
    // CRLF is converted; b.md keeps its own, as it has CRLF in the index).
    std::fs::remove_file(d.join(".gitattributes")).unwrap();
    git(d, &["config", "core.autocrlf", "true"]);
    std::fs::write(d.join("c.md"), "two\r\n").unwrap();
    let fast = CliGit::new(d);
    let head = fast.head(&fast.repo().unwrap()).unwrap();
    let staged = fast
        .stage(&index, head.commit.as_deref(), &["c.md".to_owned()])
        .unwrap();
    assert_eq!(fast.in_process_steps(), 0);
    let blob = &staged.changes[0].new.as_ref().unwrap().oid;
    assert_eq!(
        git(d, &["cat-file", "blob", blob]),
        "two\n",
        "CRLF converted on the way in"
    );
    std::fs::write(d.join("b.md"), "two\r\n").unwrap();

    // Neither: staged here, and the same blob git would make.
    git(d, &["config", "core.autocrlf", "false"]);
    let fast = CliGit::new(d);
    let head = fast.head(&fast.repo().unwrap()).unwrap();
    let staged = fast
        .stage(&index, head.commit.as_deref(), &["b.md".to_owned()])
        .unwrap();
    assert_eq!(fast.in_process_steps(), 1);
    assert_eq!(
        staged.changes[0].new.as_ref().unwrap().oid,
        git(d, &["hash-object", "b.md"]).trim()
    );
}

#[test]
fn a_held_or_moved_branch_is_a_lost_race_and_nothing_is_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d);
    std::fs::write(d.join("a"), "1\n").unwrap();
    git(d, &["add", "a"]);
    git(d, &["commit", "-qm", "init"]);
    let g = CliGit::new(d);
    let repo = g.repo().unwrap();
    let tip = g.head(&repo).unwrap().commit.unwrap();
    std::fs::write(d.join("a"), "2\n").unwrap();
    let index = d.join(".git/idx-test");
    let staged = g.stage(&index, Some(&tip), &["a".to_owned()]).unwrap();
    let commit = g
        .commit_tree(&staged.tree, Some(&tip), "two\n", false)
        .unwrap();
    let steps = g.in_process_steps();
    assert_eq!(steps, 2, "staged and committed in-process");

    // Expecting a value the branch does not hold.
    let wrong = Some(staged.tree.as_str());
    assert_eq!(
        g.update_ref("refs/heads/main", &commit, wrong, "commit: two")
            .unwrap(),
        RefUpdate::Moved
    );
    // Its lock held by another git.
    std::fs::write(d.join(".git/refs/heads/main.lock"), "").unwrap();
    assert_eq!(
        g.update_ref("refs/heads/main", &commit, Some(&tip), "commit: two")
            .unwrap(),
        RefUpdate::Moved
    );
    assert!(
        d.join(".git/refs/heads/main.lock").exists(),
        "someone else's lock is theirs"
    );
    std::fs::remove_file(d.join(".git/refs/heads/main.lock")).unwrap();
    assert_eq!(git(d, &["rev-parse", "main"]).trim(), tip);
    // Packed away: read from packed-refs under the lock.
    git(d, &["pack-refs", "--all"]);
    assert_eq!(
        g.update_ref("refs/heads/main", &commit, Some(&tip), "commit: two")
            .unwrap(),
        RefUpdate::Updated
    );
    assert_eq!(g.in_process_steps(), steps + 3);
    assert_eq!(git(d, &["rev-parse", "main"]).trim(), commit);
    assert!(!d.join(".git/refs/heads/main.lock").exists());
    for log in ["logs/HEAD", "logs/refs/heads/main"] {
        let text = std::fs::read_to_string(d.join(".git").join(log)).unwrap();
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with(&format!("{tip} {commit} In Process <ip@example.com> ")),
            "{last}"
        );
        assert!(last.ends_with("\tcommit: two"), "{last}");
    }
    git(d, &["fsck", "--strict"]);
}

/// One step of the differential run.
#[derive(Clone, Debug)]
enum Step {
    Write {
        path: usize,
        content: u8,
        exec: bool,
    },
    Link {
        path: usize,
        target: usize,
    },
    Remove {
        path: usize,
    },
    Commit {
        paths: Vec<usize>,
    },
    Pack,
}

const POOL: [&str; 9] = [
    "a", "b.txt", "d/x", "d/y", "d/e/z", "d/e/f/w", "t/u", "run.sh", "d/e",
];

fn step() -> impl Strategy<Value = Step> {
    let path = 0..POOL.len();
    prop_oneof![
        4 => (path.clone(), 0..4u8, any::<bool>())
            .prop_map(|(path, content, exec)| Step::Write { path, content, exec }),
        1 => (path.clone(), path.clone()).prop_map(|(path, target)| Step::Link { path, target }),
        2 => path.clone().prop_map(|path| Step::Remove { path }),
        4 => proptest::collection::vec(path, 1..4).prop_map(|paths| Step::Commit { paths }),
        1 => Just(Step::Pack),
    ]
}

/// Makes room for a file at `path`: no file where a directory must be,
/// no directory where the file goes.
fn clear_way(root: &Path, path: &str) {
    let mut at = root.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&at).unwrap();
        }
    }
    std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
    let full = root.join(path);
    match std::fs::symlink_metadata(&full) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&full).unwrap(),
        Ok(_) => std::fs::remove_file(&full).unwrap(),
        Err(_) => {}
    }
}

/// A commit object with its idents' times dropped (the two ways read the
/// clock at different moments).
fn timeless(d: &Path, commit: &str) -> String {
    git(d, &["cat-file", "commit", commit])
        .lines()
        .map(|l| match l.split_once("> ") {
            Some((who, _)) if l.starts_with("author ") || l.starts_with("committer ") => {
                who.to_owned()
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d);
    std::fs::write(d.join("a"), "seed\n").unwrap();
    git(d, &["add", "a"]);
    git(d, &["commit", "-qm", "seed"]);
    let fast = CliGit::new(d);
    let plumbing = CliGit::plumbing_only(d);
    let repo = fast.repo().unwrap();
    plumbing.repo().unwrap();
    let index = d.join(".git/idx-test");
    for (n, s) in steps.iter().enumerate() {
        match s {
            Step::Write {
                path,
                content,
                exec,
            } => {
                let path = POOL[*path];
                clear_way(d, path);
                let full = d.join(path);
                std::fs::write(&full, format!("{content}\n")).unwrap();
                let mode = if *exec { 0o755 } else { 0o644 };
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            Step::Link { path, target } => {
                let path = POOL[*path];
                clear_way(d, path);
                std::os::unix::fs::symlink(POOL[*target], d.join(path)).unwrap();
            }
            Step::Remove { path } => {
                let full = d.join(POOL[*path]);
                if std::fs::symlink_metadata(&full).is_ok_and(|m| !m.is_dir()) {
                    std::fs::remove_file(full).unwrap();
                }
            }
            Step::Pack => {
                git(d, &["gc", "-q"]);
            }
            Step::Commit { paths } => {
                let mut paths: Vec<String> = paths.iter().map(|p| POOL[*p].to_owned()).collect();
                paths.sort();
                paths.dedup();
                let tip = fast.head(&repo).unwrap().commit;
                let a = fast.stage(&index, tip.as_deref(), &paths);
                let _ = std::fs::remove_file(&index);
                let b = plumbing.stage(&index, tip.as_deref(), &paths);
                let _ = std::fs::remove_file(&index);
                let (a, b) = match (a, b) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(_), Err(_)) => continue,
                    (a, b) => {
                        return Err(TestCaseError::fail(format!(
                            "step {n} {paths:?}: in-process {a:?}, plumbing {b:?}"
                        )));
                    }
                };
                prop_assert_eq!(&a, &b, "step {} staging {:?}", n, paths);
                let message = format!("step {n}\n");
                let via_fast = fast
                    .commit_tree(&a.tree, tip.as_deref(), &message, false)
                    .unwrap();
                let via_git = plumbing
                    .commit_tree(&a.tree, tip.as_deref(), &message, false)
                    .unwrap();
                prop_assert_eq!(timeless(d, &via_fast), timeless(d, &via_git));
                // Alternate who moves the branch.
                let (who, commit) = if n % 2 == 0 {
                    (&fast, &via_fast)
                } else {
                    (&plumbing, &via_git)
                };
                let reflog = format!("commit: step {n}");
                let moved = who
                    .update_ref("refs/heads/main", commit, tip.as_deref(), &reflog)
                    .unwrap();
                prop_assert_eq!(moved, RefUpdate::Updated);
                let now = git(d, &["rev-parse", "main"]);
                prop_assert_eq!(now.trim(), commit.as_str());
            }
        }
    }
    git(d, &["fsck", "--strict", "--no-dangling"]);
    // Both ways left the same reflog lines, times aside.
    for log in ["logs/HEAD", "logs/refs/heads/main"] {
        let text = std::fs::read_to_string(d.join(".git").join(log)).unwrap();
        for line in text.lines() {
            let (head, message) = line.split_once('\t').unwrap();
            prop_assert!(head.contains(" In Process <ip@example.com> "), "{}", line);
            prop_assert!(message.starts_with("commit"), "{}", line);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn in_process_steps_write_what_gits_plumbing_writes(steps in proptest::collection::vec(step(), 1..24)) {
        run(&steps)?;
    }
}

#[test]
fn the_differential_run_takes_the_in_process_path() {
    // The proptest compares two ways; this makes sure one of them is not
    // git's plumbing in disguise.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d);
    std::fs::create_dir_all(d.join("d/e")).unwrap();
    std::fs::write(d.join("d/e/z"), "1\n").unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "seed"]);
    git(d, &["gc", "-q"]);
    std::fs::write(d.join("d/e/z"), "2\n").unwrap();
    std::os::unix::fs::symlink("z", d.join("d/e/l")).unwrap();
    let g = CliGit::new(d);
    let repo = g.repo().unwrap();
    let tip = g.head(&repo).unwrap().commit;
    let staged = g
        .stage(
            &d.join(".git/idx"),
            tip.as_deref(),
            &["d/e/z".to_owned(), "d/e/l".to_owned()],
        )
        .unwrap();
    assert_eq!(
        g.in_process_steps(),
        1,
        "read the packed base and staged in-process"
    );
    assert_eq!(staged.changes.len(), 2);
    assert_eq!(staged.changes[0].new.as_ref().unwrap().mode, "120000");
}
