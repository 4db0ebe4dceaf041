//! The scoped commit's checks and housekeeping on real repositories, as a
//! library user meets them: how scope paths are named and refused, what
//! stops a commit before anything is written, what `pending` reports, and
//! what `$GIT_DIR/baton/` may hold.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

mod common;
use common::{git, init};

use baton_core::commit::{
    self, CommitError, Request, check_files, check_quiet, clean_message, ensure_dir, normalise,
    pending, prepare_dir,
};
use baton_core::env::Processes;
use baton_core::env::git::{Git, Repo};
use baton_core::env::real::RealEnv;
use baton_core::env::real_git::CliGit;

/// A repository with one commit of `a.txt` and `src/b.txt`.
fn repo() -> (tempfile::TempDir, RealEnv, CliGit, Repo) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    init(d, "Scoped");
    fs::write(d.join("a.txt"), "a\n").unwrap();
    fs::create_dir(d.join("src")).unwrap();
    fs::write(d.join("src/b.txt"), "b\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "first"]);
    let env = RealEnv::new().unwrap();
    let cli = CliGit::new(d);
    let repo = cli.repo().unwrap();
    (tmp, env, cli, repo)
}

fn baton_dir(repo: &Repo) -> std::path::PathBuf {
    repo.git_dir.join("baton")
}

#[test]
fn scope_paths_are_named_from_the_top_and_refused_where_they_cannot_be_committed() {
    let (tmp, env, _cli, repo) = repo();
    let top = &repo.work_tree;
    let n = |cwd: &Path, p: &str| normalise(&env, top, cwd, Path::new(p));
    assert_eq!(n(top, "a.txt").unwrap(), "a.txt");
    assert_eq!(n(&top.join("src"), "b.txt").unwrap(), "src/b.txt");
    assert_eq!(n(top, "./src/../a.txt").unwrap(), "a.txt");
    // Not there yet: named as spelt past what exists.
    assert_eq!(n(top, "new/dir/c.txt").unwrap(), "new/dir/c.txt");
    // A symlinked directory is resolved; a symlink as the last component
    // is committed as a link, so it stays.
    symlink(top.join("src"), top.join("via")).unwrap();
    symlink("a.txt", top.join("alias")).unwrap();
    assert_eq!(n(top, "via/b.txt").unwrap(), "src/b.txt");
    assert_eq!(n(top, "alias").unwrap(), "alias");
    let why = |p: &str| match n(top, p) {
        Err(CommitError::BadPath { why, .. }) => why,
        other => panic!("{p}: {other:?}"),
    };
    assert!(why("..").contains("outside"), "{}", why(".."));
    assert!(why("../elsewhere.txt").contains("outside"));
    assert!(why(".").contains("top"));
    assert!(why(".git/config").contains("git directory"));
    assert!(why("src/.git/x").contains("git directory"));
    assert!(why("a\nb.txt").contains("control"));
    // Past a regular file nothing can exist: an error, not a name.
    match n(top, "a.txt/inside/x") {
        Err(CommitError::Io(_)) => {}
        other => panic!("{other:?}"),
    }
    drop(tmp);
}

#[test]
fn a_merge_rebase_cherry_pick_revert_or_bisect_in_progress_stops_a_commit() {
    let (_tmp, env, _cli, repo) = repo();
    check_quiet(&env, &repo).unwrap();
    for (file, what) in [
        ("MERGE_HEAD", "a merge"),
        ("rebase-merge", "a rebase"),
        ("CHERRY_PICK_HEAD", "a cherry-pick"),
        ("BISECT_LOG", "a bisect"),
    ] {
        let path = repo.git_dir.join(file);
        fs::write(&path, "x").unwrap();
        match check_quiet(&env, &repo) {
            Err(CommitError::InProgress { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{file}: {other:?}"),
        }
        fs::remove_file(&path).unwrap();
    }
    // What cannot be inspected is an error, not "nothing in progress".
    let blocked = Repo {
        git_dir: repo.work_tree.join("a.txt"),
        ..repo.clone()
    };
    assert!(matches!(
        check_quiet(&env, &blocked),
        Err(CommitError::Io(_))
    ));
}

#[test]
fn a_directory_in_the_scope_is_refused_and_files_are_not() {
    let (_tmp, env, _cli, repo) = repo();
    check_files(&env, &repo, &["a.txt".into(), "missing.txt".into()]).unwrap();
    match check_files(&env, &repo, &["a.txt".into(), "src".into()]) {
        Err(CommitError::BadPath { path, why }) => {
            assert_eq!(path, "src");
            assert!(why.contains("directory"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pending_lists_what_a_commit_of_the_scope_would_change_and_leaves_nothing_behind() {
    let (_tmp, env, cli, repo) = repo();
    let head = cli.head(&repo).unwrap();
    let scope = vec!["a.txt".to_owned(), "src/b.txt".to_owned()];
    assert!(
        pending(&env, &cli, &repo, &head, &scope)
            .unwrap()
            .is_empty()
    );
    fs::write(repo.work_tree.join("a.txt"), "changed\n").unwrap();
    fs::write(repo.work_tree.join("other.txt"), "not in scope\n").unwrap();
    let changes = pending(&env, &cli, &repo, &head, &scope).unwrap();
    assert_eq!(
        changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        ["a.txt"]
    );
    // Its private index is gone again.
    let left: Vec<_> = fs::read_dir(baton_dir(&repo))
        .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_private_directory_is_made_once_and_never_taken_from_a_symlink_or_file() {
    let (tmp, env, _cli, _repo) = repo();
    let dir = tmp.path().join("made");
    assert!(ensure_dir(&env, &dir).unwrap());
    assert!(!ensure_dir(&env, &dir).unwrap());
    assert!(dir.is_dir());
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, tmp.path().join("link")).unwrap();
    assert!(ensure_dir(&env, &tmp.path().join("link")).is_err());
    fs::write(tmp.path().join("file"), "x").unwrap();
    assert!(ensure_dir(&env, &tmp.path().join("file")).is_err());
    // Its parent missing: an error, not a directory claimed made.
    let e = ensure_dir(&env, &tmp.path().join("no/such")).unwrap_err();
    assert!(e.to_string().starts_with("create: "), "{e}");
}

#[test]
fn a_dead_commits_leftovers_are_removed_and_a_live_ones_and_strangers_kept() {
    let (_tmp, env, _cli, repo) = repo();
    let dir = baton_dir(&repo);
    // Made on first use: nothing to sweep.
    prepare_dir(&env, &repo).unwrap();
    assert!(dir.is_dir());
    let me = env.identity();
    let live = format!("index.{}.{}.0000abcd", me.pid, me.start_time);
    let dead = [
        // pid 0 never runs a commit; u32::MAX-ish pids do not exist.
        "index.4194999.12345.00000001".to_owned(),
        "msg.4194999.12345.00000002".to_owned(),
        // Our pid, another start: a reused pid.
        format!("index.{}.{}.00000003", me.pid, me.start_time + 1),
    ];
    let strangers = ["notes.txt", "index.abc.def.0", "msg.1", "other.1.2.3"];
    for name in dead.iter().chain([&live]) {
        fs::write(dir.join(name), "x").unwrap();
    }
    for name in strangers {
        fs::write(dir.join(name), "x").unwrap();
    }
    prepare_dir(&env, &repo).unwrap();
    for name in &dead {
        assert!(!dir.join(name).exists(), "{name} left");
    }
    assert!(dir.join(&live).exists());
    for name in strangers {
        assert!(dir.join(name).exists(), "{name} removed");
    }
}

#[test]
fn only_a_lost_race_is_worth_retrying_and_messages_are_cleaned_as_git_does() {
    let busy = CommitError::Busy {
        target: "refs/heads/main".into(),
        attempts: 3,
    };
    assert!(busy.is_busy());
    assert!(!CommitError::EmptyMessage.is_busy());
    assert!(!CommitError::Nothing(vec!["a".into()]).is_busy());
    // As `git stripspace`: leading whitespace kept, trailing dropped,
    // blank runs made one, none at either end.
    assert_eq!(
        clean_message("\n\n  subject  \n\n\n\nbody\t\n\n"),
        "  subject\n\nbody\n"
    );
    assert_eq!(clean_message("one"), "one\n");
    assert_eq!(clean_message(" \n\t\n"), "");
}

#[test]
fn a_commit_takes_exactly_its_scope_whatever_else_is_staged() {
    let (_tmp, env, cli, repo) = repo();
    let top = repo.work_tree.clone();
    fs::write(top.join("a.txt"), "mine\n").unwrap();
    fs::write(top.join("src/b.txt"), "someone else's, staged\n").unwrap();
    git(&top, &["add", "src/b.txt"]);
    let scope = vec!["a.txt".to_owned()];
    let req = Request {
        paths: &scope,
        message: "mine only",
        allow_empty: false,
        detach_ok: false,
        verify: true,
        attempts: commit::ATTEMPTS,
    };
    let done = commit::commit(&env, &cli, &repo, &req).unwrap();
    assert_eq!(
        done.changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["a.txt"]
    );
    assert_eq!(done.attempts, 1);
    assert_eq!(done.target, "refs/heads/main");
    // Again: nothing left to commit in that scope.
    match commit::commit(&env, &cli, &repo, &req) {
        Err(CommitError::Nothing(p)) => assert_eq!(p, scope),
        other => panic!("{other:?}"),
    }
    let empty = Request {
        message: " \n",
        ..req.clone()
    };
    assert!(matches!(
        commit::commit(&env, &cli, &repo, &empty),
        Err(CommitError::EmptyMessage)
    ));
}

fn hook(repo: &Repo, name: &str, body: &str, executable: bool) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(&repo.hooks).unwrap();
    let path = repo.hooks.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

fn last_message(repo: &Repo) -> String {
    let out = Command::new("git")
        .current_dir(&repo.work_tree)
        .args(["log", "-1", "--format=%B"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

fn request<'a>(scope: &'a [String], message: &'a str) -> Request<'a> {
    Request {
        paths: scope,
        message,
        allow_empty: false,
        detach_ok: false,
        verify: true,
        attempts: commit::ATTEMPTS,
    }
}

/// Edits `a.txt` again (so there is something to commit) and commits it.
fn commit_a(
    env: &RealEnv,
    cli: &CliGit,
    repo: &Repo,
    req: &Request,
) -> Result<commit::Committed, CommitError> {
    let path = repo.work_tree.join("a.txt");
    let mut body = fs::read_to_string(&path).unwrap();
    body.push_str("more\n");
    fs::write(&path, body).unwrap();
    commit::commit(env, cli, repo, req)
}

#[test]
fn hooks_run_as_git_commit_runs_them_and_no_verify_skips_them() {
    let (_tmp, env, cli, repo) = repo();
    let scope = vec!["a.txt".to_owned()];
    // A failing pre-commit stops the commit.
    hook(&repo, "pre-commit", "exit 3", true);
    let tip = cli.head(&repo).unwrap().commit;
    match commit_a(&env, &cli, &repo, &request(&scope, "blocked")) {
        Err(CommitError::Hook { hook, status }) => {
            assert_eq!(hook, "pre-commit");
            assert_eq!(status, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cli.head(&repo).unwrap().commit, tip);
    // --no-verify commits anyway.
    let unverified = Request {
        verify: false,
        ..request(&scope, "unverified")
    };
    commit_a(&env, &cli, &repo, &unverified).unwrap();
    assert_eq!(last_message(&repo), "unverified");
    fs::remove_file(repo.hooks.join("pre-commit")).unwrap();

    // commit-msg alone may edit the message.
    hook(
        &repo,
        "commit-msg",
        "echo 'Signed-off-by: hook' >> \"$1\"",
        true,
    );
    commit_a(&env, &cli, &repo, &request(&scope, "signed")).unwrap();
    assert_eq!(last_message(&repo), "signed\nSigned-off-by: hook");
    fs::remove_file(repo.hooks.join("commit-msg")).unwrap();

    // prepare-commit-msg alone too, and is told the message's source.
    hook(&repo, "prepare-commit-msg", "echo \"[$2]\" >> \"$1\"", true);
    commit_a(&env, &cli, &repo, &request(&scope, "prepared")).unwrap();
    assert_eq!(last_message(&repo), "prepared\n[message]");

    // A hook that is not executable is not run, as git skips it.
    hook(&repo, "prepare-commit-msg", "echo never >> \"$1\"", false);
    commit_a(&env, &cli, &repo, &request(&scope, "plain")).unwrap();
    assert_eq!(last_message(&repo), "plain");

    // A hook that empties the message stops the commit.
    hook(&repo, "commit-msg", ": > \"$1\"", true);
    let tip = cli.head(&repo).unwrap().commit;
    assert!(matches!(
        commit_a(&env, &cli, &repo, &request(&scope, "emptied")),
        Err(CommitError::EmptyMessage)
    ));
    assert_eq!(cli.head(&repo).unwrap().commit, tip);
    // Nothing of baton's is left in the git directory.
    let left: Vec<_> = fs::read_dir(baton_dir(&repo))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("publish"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_detached_head_is_refused_unless_allowed_and_an_empty_commit_needs_asking() {
    let (_tmp, env, cli, repo) = repo();
    let scope = vec!["a.txt".to_owned()];
    // Nothing changed: refused, unless an empty commit is asked for.
    let empty = Request {
        allow_empty: true,
        ..request(&scope, "empty on purpose")
    };
    let done = commit::commit(&env, &cli, &repo, &empty).unwrap();
    assert!(done.changes.is_empty());
    assert_eq!(last_message(&repo), "empty on purpose");

    git(&repo.work_tree, &["checkout", "-q", "--detach"]);
    let tip = cli.head(&repo).unwrap().commit.unwrap();
    match commit_a(&env, &cli, &repo, &request(&scope, "detached")) {
        Err(CommitError::Detached(at)) => assert_eq!(at, tip),
        other => panic!("{other:?}"),
    }
    let allowed = Request {
        detach_ok: true,
        ..request(&scope, "detached, allowed")
    };
    let done = commit_a(&env, &cli, &repo, &allowed).unwrap();
    assert_eq!(done.target, "HEAD");
    assert_eq!(done.parent.as_deref(), Some(tip.as_str()));
    // The shared index was brought in line: git sees nothing to commit.
    assert_eq!(done.index, baton_core::env::git::Refresh::Done);
    let out = Command::new("git")
        .current_dir(&repo.work_tree)
        .args(["status", "--porcelain"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}
