//! `baton lock` as a drop-in for util-linux flock(1): each case runs the
//! same shell script once with `flock` and once with `baton lock` as `$X`,
//! and the two must end the same way. (Where baton differs on purpose, the
//! case passes `-E` so both report the same code; the README's table lists
//! the differences.)
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::BATON;

/// Runs `script` under `sh` in a fresh directory with `$X` set to `tool`;
/// its stdout (the script echoes what it checks).
fn run(tool: &str, script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("X", tool)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool}: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The script's output under flock(1) and under baton, which must agree.
fn same(script: &str) -> String {
    let flock = run("flock", script);
    let baton = run(&format!("{BATON} lock"), script);
    assert_eq!(baton, flock, "baton and flock(1) differ on:\n{script}");
    baton
}

#[test]
fn util_linux_flock_is_installed() {
    let v = Command::new("flock").arg("--version").output().unwrap();
    assert!(v.status.success(), "these tests compare against flock(1)");
}

#[test]
fn the_command_runs_holding_the_lock_and_its_status_is_passed_on() {
    // The command follows FILE directly (flock(1) would run a `--` as the
    // command; baton also takes `FILE -- CMD`), or comes through -c.
    let out = same(
        r#"$X f echo ran; echo "status $?"
           $X f sh -c 'exit 3'; echo "status $?"
           $X f -c 'exit 7'; echo "status $?""#,
    );
    assert_eq!(out, "ran\nstatus 0\nstatus 3\nstatus 7\n");
    let out = run(&format!("{BATON} lock"), "$X f -- sh -c 'exit 3'; echo $?");
    assert_eq!(out, "3\n");
}

#[test]
fn a_held_lock_gives_the_conflict_exit_code_at_once_or_after_the_timeout() {
    let out = same(
        r#"$X f sleep 2 & sleep 0.5
           $X -n -E 42 f echo never; echo "nonblock $?"
           $X --nonblock --conflict-exit-code 43 f true; echo "long $?"
           $X -w 0.2 -E 44 f true; echo "timeout $?"
           $X --timeout 0.2 -E 45 f true; echo "long timeout $?"
           wait; $X -n f echo free"#,
    );
    assert_eq!(
        out,
        "nonblock 42\nlong 43\ntimeout 44\nlong timeout 45\nfree\n"
    );
}

#[test]
fn shared_locks_coexist_and_keep_an_exclusive_one_out() {
    let out = same(
        r#"$X -s f sleep 2 & sleep 0.5
           $X -s -n f echo "second reader"
           $X -n -E 9 f true; echo "writer $?"
           $X -x -n -E 9 f true; echo "writer -x $?"
           $X -e -n -E 9 f true; echo "writer -e $?"
           wait"#,
    );
    assert_eq!(out, "second reader\nwriter 9\nwriter -x 9\nwriter -e 9\n");
}

#[test]
fn close_keeps_the_lock_from_a_command_that_outlives_the_holder() {
    // The command leaves a background child behind. With -o neither tool
    // lets it inherit the lock.
    let with_close = r#"$X -o f sh -c 'sleep 2 >/dev/null 2>&1 &'
           $X -n -E 9 f true; echo "closed $?""#;
    assert_eq!(same(with_close), "closed 0\n");
    // Without -o, flock(1)'s lock lives as long as any process holds its
    // descriptor, so the leftover child keeps it; baton's ends when the
    // command it ran ends (it unlocks the description on the way out), so
    // what was locked is exactly what baton reported running.
    let without = r#"$X f sh -c 'sleep 2 >/dev/null 2>&1 &'
           $X -n -E 9 f true; echo "after the command $?""#;
    assert_eq!(run("flock", without), "after the command 9\n");
    assert_eq!(
        run(&format!("{BATON} lock"), without),
        "after the command 0\n"
    );
}

#[test]
fn a_descriptor_is_locked_for_the_shell_that_holds_it_and_unlocked_by_u() {
    let out = same(
        r#"(
             $X -n 9 || exit 1
             echo "locked fd"
             flock -n -E 9 lockfile true; echo "other process $?"
             $X -u 9
             flock -n lockfile echo "after -u"
           ) 9>lockfile
           (
             $X -s 9 && flock -s -n lockfile echo "shared fd"
           ) 9>lockfile"#,
    );
    assert_eq!(out, "locked fd\nother process 9\nafter -u\nshared fd\n");
}

#[test]
fn verbose_says_how_long_the_lock_took_and_what_runs() {
    for tool in ["flock", &format!("{BATON} lock")] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{tool} --verbose f true"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        // Both say it on stdout, before the command's own output.
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("getting lock took"), "{tool}: {said}");
        assert!(said.contains("executing true"), "{tool}: {said}");
    }
}

#[test]
fn baton_differs_on_purpose_by_default() {
    // flock(1) exits 1 on a conflict and locks FILE itself; baton exits 75
    // (EX_TEMPFAIL: a caller can tell "busy" from "failed") and locks the
    // sidecar FILE.baton.lock, never touching FILE.
    let flock = run(
        "flock",
        "$X f sleep 1 & sleep 0.3; $X -n f true; echo $?; wait; ls",
    );
    let baton = run(
        &format!("{BATON} lock"),
        "$X f sleep 1 & sleep 0.3; $X -n f true 2>/dev/null; echo $?; wait; ls",
    );
    assert_eq!(flock, "1\nf\n");
    assert_eq!(baton, "75\nf.baton.lock\n");
}
