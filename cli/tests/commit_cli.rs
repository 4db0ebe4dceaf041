//! `baton commit` and `baton txn` against real git, real processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_one_line_error, baton, run, stderr, stdout};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A repository with TODO.md and state.json committed.
fn repo() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.name", "t"]);
    git(d, &["config", "user.email", "t@example.com"]);
    git(d, &["config", "commit.gpgSign", "false"]);
    std::fs::write(d.join("TODO.md"), "# TODO\n").unwrap();
    std::fs::write(d.join("state.json"), "{\n  \"base\": 0\n}\n").unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "init"]);
    t
}

/// Lines a commit adds and removes (`+x` / `-x`), headers left out.
fn diff_lines(dir: &Path, commit: &str) -> Vec<String> {
    git(dir, &["show", "--format=", "--unified=0", commit])
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn eight_txns_on_one_todo_and_state_commit_exactly_their_own_line_and_key() {
    let t = repo();
    let d = t.path();
    let kids: Vec<_> = (1..=8)
        .map(|i| {
            let script =
                format!("echo '- task {i}' >> TODO.md && sed -i '1a\\  \"t{i}\": {i},' state.json");
            baton(d)
                .args(["txn", "-w", "60", "--scope", "TODO.md", "state.json"])
                .args(["-m", &format!("task {i}"), "--", "sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let commits = git(d, &["rev-list", "HEAD~8..HEAD"]);
    let commits: Vec<&str> = commits.lines().collect();
    assert_eq!(commits.len(), 8);
    let mut seen = Vec::new();
    for c in commits {
        let subject = git(d, &["log", "-1", "--format=%s", c]);
        let i: u32 = subject
            .trim()
            .strip_prefix("task ")
            .unwrap()
            .parse()
            .unwrap();
        let added: Vec<String> = diff_lines(d, c)
            .into_iter()
            .filter(|l| l.starts_with('+'))
            .collect();
        assert_eq!(
            added,
            vec![format!("+- task {i}"), format!("+  \"t{i}\": {i},")],
            "commit {c} ({subject}) holds exactly its own line and key"
        );
        assert!(
            diff_lines(d, c).iter().all(|l| l.starts_with('+')),
            "nothing removed"
        );
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
    assert_eq!(
        git(d, &["status", "--porcelain"]),
        "",
        "nothing left behind"
    );
    assert_eq!(git(d, &["show", "HEAD:TODO.md"]).lines().count(), 9);
}

#[test]
fn commit_leaves_other_staged_paths_staged_and_a_plain_commit_does_not_revert_it() {
    let t = repo();
    let d = t.path();
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    std::fs::write(d.join("b.txt"), "b\n").unwrap();
    git(d, &["add", "b.txt"]);
    let out = run(baton(d).args(["--json", "commit", "-m", "add a", "a.txt"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let event: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(event["event"], "committed");
    assert_eq!(event["index"], "refreshed");
    assert_eq!(event["validated"], true);
    assert_eq!(
        git(
            d,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]
        ),
        "a.txt\n"
    );
    assert_eq!(
        git(d, &["diff", "--cached", "--name-only"]),
        "b.txt\n",
        "b.txt stays staged"
    );
    assert_eq!(
        git(d, &["status", "--porcelain", "--", "a.txt"]),
        "",
        "status is truthful"
    );
    git(d, &["commit", "-q", "-m", "plain"]);
    assert_eq!(
        git(d, &["show", "HEAD:a.txt"]),
        "a\n",
        "a plain commit keeps a.txt"
    );
    assert_eq!(
        git(
            d,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]
        ),
        "b.txt\n"
    );
}

#[test]
fn deletions_and_renames_are_committed_as_delete_and_add() {
    let t = repo();
    let d = t.path();
    std::fs::rename(d.join("TODO.md"), d.join("TASKS.md")).unwrap();
    std::fs::remove_file(d.join("state.json")).unwrap();
    let out = run(baton(d).args(["commit", "-m", "mv", "TODO.md", "TASKS.md", "state.json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let names = git(
        d,
        &[
            "diff-tree",
            "--no-commit-id",
            "--name-status",
            "--no-renames",
            "-r",
            "HEAD",
        ],
    );
    assert_eq!(names, "A\tTASKS.md\nD\tTODO.md\nD\tstate.json\n");
    assert_eq!(git(d, &["status", "--porcelain"]), "");
}

#[test]
fn hooks_run_against_exactly_the_scoped_change_and_can_refuse_it() {
    let t = repo();
    let d = t.path();
    let scratch = tempfile::tempdir().unwrap();
    let seen = scratch.path().join("hook-saw");
    let hook = d.join(".git/hooks/pre-commit");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ngit diff --cached --name-only > {}\ntest ! -e refuse\n",
            seen.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    std::fs::write(d.join("b.txt"), "b\n").unwrap();
    git(d, &["add", "b.txt"]);
    let out = run(baton(d).args(["commit", "-m", "a", "a.txt"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "a.txt\n");
    std::fs::write(d.join("a.txt"), "a2\n").unwrap();
    std::fs::write(d.join("refuse"), "").unwrap();
    let head = git(d, &["rev-parse", "HEAD"]);
    let out = run(baton(d).args(["commit", "-m", "a2", "a.txt"]));
    assert_one_line_error(&out, 1, &["pre-commit hook failed", "--no-verify"]);
    assert_eq!(git(d, &["rev-parse", "HEAD"]), head, "nothing committed");
    let out = run(baton(d).args(["commit", "--no-verify", "-m", "a2", "a.txt"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_stale_index_lock_does_not_stop_the_commit_but_is_reported() {
    let t = repo();
    let d = t.path();
    std::fs::write(d.join(".git/index.lock"), "").unwrap();
    std::fs::write(d.join("TODO.md"), "# TODO\n- x\n").unwrap();
    let out = run(baton(d).args(["--json", "commit", "-m", "x", "TODO.md"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let event: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(event["index"], "stale");
    assert!(
        stderr(&out).contains("next plain `git commit` would revert"),
        "{}",
        stderr(&out)
    );
    assert_eq!(git(d, &["show", "HEAD:TODO.md"]), "# TODO\n- x\n");
    assert!(
        d.join(".git/index.lock").exists(),
        "git's lock is not baton's to remove"
    );
}

#[test]
fn refusals_are_one_line_and_leave_the_repository_untouched() {
    let t = repo();
    let d = t.path();
    let head = git(d, &["rev-parse", "HEAD"]);
    std::fs::write(d.join("TODO.md"), "changed\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let out = run(baton(outside.path()).args(["commit", "-m", "x", "a"]));
    assert_one_line_error(&out, 1, &["not a git repository"]);
    let out = run(baton(d).args(["commit", "-m", "x", "../elsewhere"]));
    assert_one_line_error(&out, 1, &["outside the repository"]);
    let out = run(baton(d).args(["commit", "-m", "x", ".git/config"]));
    assert_one_line_error(&out, 1, &["inside the git directory"]);
    let out = run(baton(d).args(["commit", "-m", "x", "bad\nname"]));
    assert_one_line_error(&out, 1, &["control character"]);
    let out = run(baton(d).args(["commit", "-m", "  ", "TODO.md"]));
    assert_one_line_error(&out, 1, &["empty commit message"]);
    let out = run(baton(d).args(["commit", "-m", "x", "state.json"]));
    assert_one_line_error(&out, 1, &["nothing to commit"]);
    std::fs::create_dir(d.join("sub")).unwrap();
    let out = run(baton(d).args(["commit", "-m", "x", "sub"]));
    assert_one_line_error(&out, 1, &["a directory"]);
    std::fs::write(d.join(".git/MERGE_HEAD"), &head).unwrap();
    let out = run(baton(d).args(["commit", "-m", "x", "TODO.md"]));
    assert_one_line_error(&out, 1, &["a merge is in progress"]);
    std::fs::remove_file(d.join(".git/MERGE_HEAD")).unwrap();
    git(d, &["checkout", "-q", "--detach"]);
    let out = run(baton(d).args(["commit", "-m", "x", "TODO.md"]));
    assert_one_line_error(&out, 1, &["detached", "--detach-ok"]);
    assert_eq!(git(d, &["rev-parse", "HEAD"]), head);
    let out = run(baton(d).args(["commit", "--detach-ok", "-m", "x", "TODO.md"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(git(d, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(d, &["rev-parse", "main"]),
        head,
        "the branch did not move"
    );
    let bare = tempfile::tempdir().unwrap();
    git(bare.path(), &["init", "-q", "--bare"]);
    let out = run(baton(bare.path()).args(["commit", "-m", "x", "a"]));
    assert_one_line_error(&out, 1, &["bare repository"]);
}

#[test]
fn first_commit_symlinks_packed_branches_and_linked_worktrees_work() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.name", "t"]);
    git(d, &["config", "user.email", "t@example.com"]);
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    std::os::unix::fs::symlink("a.txt", d.join("link")).unwrap();
    let out = run(baton(d).args(["commit", "-m", "first", "a.txt", "link"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(git(d, &["rev-list", "--count", "HEAD"]), "1\n");
    assert!(
        git(d, &["ls-tree", "HEAD", "link"]).starts_with("120000"),
        "a link, not followed"
    );
    let scratch = tempfile::tempdir().unwrap();
    let wt = scratch.path().join("wt-linked");
    git(
        d,
        &["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()],
    );
    std::fs::write(wt.join("a.txt"), "side\n").unwrap();
    let out = run(baton(&wt).args(["commit", "-m", "side", "a.txt"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(git(d, &["show", "side:a.txt"]), "side\n");
    assert_eq!(git(d, &["show", "main:a.txt"]), "a\n");
    assert_eq!(
        git(&wt, &["status", "--porcelain"]),
        "",
        "the worktree's own index"
    );
    // A branch that lives only in packed-refs is read there, and moved by
    // compare-and-swap from the commit it names.
    git(d, &["pack-refs", "--all"]);
    assert!(!d.join(".git/refs/heads/main").exists(), "main is packed");
    let packed = git(d, &["rev-parse", "main"]);
    std::fs::write(d.join("a.txt"), "packed\n").unwrap();
    let out = run(baton(d).args(["commit", "-m", "on packed", "a.txt"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(git(d, &["rev-parse", "main~1"]), packed);
    assert_eq!(git(d, &["show", "main:a.txt"]), "packed\n");
}

#[test]
fn a_failing_command_commits_nothing_and_outside_edits_are_caught() {
    let t = repo();
    let d = t.path();
    let head = git(d, &["rev-parse", "HEAD"]);
    let out = run(baton(d).args([
        "txn", "--scope", "TODO.md", "-m", "x", "--", "sh", "-c", "exit 3",
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(git(d, &["rev-parse", "HEAD"]), head);
    let script = "echo x >> TODO.md; echo y >> state.json";
    let out = run(baton(d).args([
        "txn", "--strict", "--scope", "TODO.md", "-m", "x", "--", "sh", "-c", script,
    ]));
    assert_one_line_error(&out, 1, &["state.json, outside its scope", "--strict"]);
    assert_eq!(git(d, &["rev-parse", "HEAD"]), head);
    git(d, &["checkout", "-q", "--", "."]);
    let out = run(baton(d).args([
        "txn", "--scope", "TODO.md", "-m", "x", "--", "sh", "-c", script,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: the command changed state.json, outside its scope"));
    assert_eq!(
        git(
            d,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]
        ),
        "TODO.md\n"
    );
}

/// SIGKILL to baton and its command together, as an OOM kill would.
fn kill_group(pid: u32) {
    let ok = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_killed_txn_leaves_a_sound_repository_a_named_refusal_and_a_recovery() {
    let t = repo();
    let d = t.path();
    let name = kill_txn_mid_edit(d, "TODO.md", "the dead task", "- dead task");
    git(d, &["fsck", "--no-progress"]);
    let out = run(baton(d).args(["txn", "--scope", "TODO.md", "-m", "next", "--", "true"]));
    assert_one_line_error(
        &out,
        1,
        &[
            "differs from HEAD in TODO.md",
            &name,
            "the dead task",
            "--recover",
        ],
    );
    let out = run(baton(d).args(["txn", "--recover", &name, "--commit"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(git(d, &["log", "-1", "--format=%s"]), "the dead task\n");
    let out = run(baton(d).args([
        "txn",
        "--scope",
        "TODO.md",
        "-m",
        "next",
        "--",
        "sh",
        "-c",
        "echo next >> TODO.md",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&run(baton(d).args(["txn", "--list"]))),
        "",
        "no journal left"
    );
    // --restore discards a dead one's edits instead.
    let name = kill_txn_mid_edit(d, "state.json", "doomed", "junk");
    let out = run(baton(d).args(["txn", "--recover", &name, "--restore"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(git(d, &["status", "--porcelain"]), "");
    // A dead transaction whose scope a person already put back: restoring
    // it touches nothing else the person has edited (an empty path list
    // once meant "every path" to git), even beside a stale index.lock.
    let name = kill_txn_mid_edit(d, "state.json", "reverted", "junk");
    git(d, &["checkout", "--", "state.json"]);
    std::fs::write(d.join("TODO.md"), "a person's unsaved work\n").unwrap();
    std::fs::write(d.join(".git/index.lock"), "").unwrap();
    let out = run(baton(d).args(["txn", "--recover", &name, "--restore"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(d.join("TODO.md")).unwrap(),
        "a person's unsaved work\n"
    );
    std::fs::remove_file(d.join(".git/index.lock")).unwrap();
    assert_eq!(git(d, &["status", "--porcelain"]), " M TODO.md\n");
    assert_eq!(stdout(&run(baton(d).args(["txn", "--list"]))), "");
}

/// Runs a txn over `file` whose command appends `line` and then sleeps,
/// kills baton and the command once the line is there, and returns the
/// dead transaction's name as `txn --list` reports it.
fn kill_txn_mid_edit(d: &Path, file: &str, message: &str, line: &str) -> String {
    let script = format!("echo '{line}' >> {file}; exec -a baton-commit-cli-kill-9 sleep 30");
    let mut child = baton(d)
        .args([
            "txn", "--scope", file, "-m", message, "--", "bash", "-c", &script,
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(d.join(file))
        .unwrap()
        .contains(line)
    {
        assert!(Instant::now() < deadline, "the command never edited");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_group(child.id());
    child.wait().unwrap();
    let listed = stdout(&run(baton(d).args(["--json", "txn", "--list"])));
    let entry: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(entry["dead"], true, "{listed}");
    entry["txn"].as_str().unwrap().to_owned()
}

#[test]
fn overlapping_scopes_wait_or_exit_75_naming_the_holder() {
    let t = repo();
    let d = t.path();
    let mut holder = baton(d)
        .args([
            "txn", "--id", "agent-a", "--scope", "TODO.md", "-m", "slow", "--",
        ])
        .args(["sh", "-c", "echo slow >> TODO.md; sleep 1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(d.join("TODO.md"))
        .unwrap()
        .contains("slow")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run(baton(d).args(["txn", "--scope", "TODO.md", "-m", "x", "--", "true"]));
    assert_one_line_error(&out, 75, &["TODO.md: claimed by agent-a", "txn: slow"]);
    let out = run(baton(d)
        .args(["txn", "-w", "30", "--scope", "TODO.md", "-m", "after", "--"])
        .args(["sh", "-c", "echo after >> TODO.md"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(holder.wait().unwrap().success());
    assert_eq!(git(d, &["log", "--format=%s", "-2"]), "after\nslow\n");
}

#[test]
fn planted_symlinks_for_batons_git_directories_are_refused_and_never_followed() {
    let t = repo();
    let d = t.path();
    let elsewhere = tempfile::tempdir().unwrap();
    // Named like a dead process's private index, which baton would sweep.
    let bait = elsewhere.path().join("index.999999.1.deadbeef");
    std::fs::write(&bait, "keep me").unwrap();
    // Looks like a journal torn by a crash, which baton would remove.
    let torn = elsewhere.path().join("1-1-1.json");
    std::fs::write(&torn, "{\"baton\":1,").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), d.join(".git/baton")).unwrap();
    std::fs::write(d.join("TODO.md"), "changed\n").unwrap();
    let head = git(d, &["rev-parse", "HEAD"]);
    let out = run(baton(d).args(["commit", "-m", "x", "TODO.md"]));
    assert_one_line_error(&out, 1, &[".git/baton", "move it away"]);
    assert_eq!(std::fs::read_to_string(&bait).unwrap(), "keep me");
    assert_eq!(git(d, &["rev-parse", "HEAD"]), head, "nothing committed");
    std::fs::remove_file(d.join(".git/baton")).unwrap();
    std::fs::create_dir(d.join(".git/baton")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), d.join(".git/baton/txn")).unwrap();
    git(d, &["checkout", "-q", "--", "TODO.md"]);
    let out = run(baton(d).args(["txn", "--scope", "TODO.md", "-m", "x", "--", "true"]));
    assert_one_line_error(&out, 1, &[".git/baton/txn", "move it away"]);
    let out = run(baton(d).args(["txn", "--list"]));
    assert_one_line_error(&out, 1, &[".git/baton/txn", "move it away"]);
    let names: Vec<_> = std::fs::read_dir(elsewhere.path()).unwrap().collect();
    assert_eq!(
        names.len(),
        2,
        "nothing written or removed through the link"
    );
    assert!(torn.exists());
}
