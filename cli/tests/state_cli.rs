//! `baton state` with real processes: concurrent updates lose nothing in
//! either mode, readers never see a partial file, and bad input leaves the
//! file untouched with one clear line.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{BATON, assert_one_line_error, baton, run, stderr, stdout};

/// CMD for a document that is one number: add 1.
const INCREMENT: &str = "read n; echo $((n + 1))";

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn sixteen_writers_of_a_hundred_updates_end_at_1600_in_each_mode() {
    for mode in [
        &["state", "update"][..],
        &["state", "update", "--cas", "--attempts", "1000"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("count.json"), "0\n").unwrap();
        let torn = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            // A reader samples throughout: always a whole number.
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let o = run(baton(dir.path()).args(["state", "get", "count.json"]));
                    if !o.status.success() || stdout(&o).trim().parse::<u64>().is_err() {
                        torn.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            let writers: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..100 {
                            let o = run(baton(dir.path()).args(mode).args([
                                "count.json",
                                "--",
                                "sh",
                                "-c",
                                INCREMENT,
                            ]));
                            assert_eq!(o.status.code(), Some(0), "{mode:?}: {}", stderr(&o));
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            done.store(true, Ordering::Relaxed);
        });
        assert_eq!(read(dir.path(), "count.json").trim(), "1600", "{mode:?}");
        assert_eq!(
            torn.load(Ordering::Relaxed),
            0,
            "{mode:?}: a reader saw a partial file"
        );
    }
}

#[test]
fn killed_writers_never_leave_the_file_empty_or_partial() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), "0\n").unwrap();
    let done = AtomicBool::new(false);
    let bad = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(dir.path().join("s.json")).unwrap_or_default();
                if text.trim().parse::<u64>().is_err() {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        for i in 0..60u64 {
            let cas = if i % 2 == 0 { "--cas" } else { "--json" };
            let mut child = Command::new(BATON)
                .current_dir(dir.path())
                .args(["state", "update", cas, "s.json", "--", "sh", "-c"])
                .arg(format!("read n; sleep 0.00{}; echo $((n + 1))", i % 7))
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(500 + (i * 397) % 6000));
            let _ = child.kill();
            let _ = child.wait();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "a reader saw an empty or partial file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_missing_file_reads_as_null_and_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(baton(dir.path()).args(["state", "get", "new.json"]));
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "null\n"));
    let o = run(baton(dir.path())
        .args(["state", "update", "new.json", "--", "sh", "-c"])
        .arg(r#"read doc; [ "$doc" = null ] && echo '{"tasks": []}'"#));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(dir.path(), "new.json"), "{\"tasks\": []}\n");
}

#[test]
fn bad_input_leaves_the_file_untouched_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.json"), "{\"n\": 1}\n").unwrap();
    std::fs::write(d.join("torn.json"), "{\"n\": ").unwrap();
    std::fs::create_dir(d.join("dir.json")).unwrap();
    std::os::unix::fs::symlink("s.json", d.join("link.json")).unwrap();
    std::os::unix::fs::symlink("nowhere.json", d.join("dangling.json")).unwrap();
    let update = |file: &str, script: &str| {
        run(baton(d).args(["state", "update", file, "--", "sh", "-c", script]))
    };
    // The command fails: its status is passed on.
    let o = update("s.json", "cat >/dev/null; exit 3");
    assert_one_line_error(&o, 3, &["s.json", "exited with status 3", "untouched"]);
    // The command prints something that is not JSON: where, exactly.
    let o = update("s.json", "cat >/dev/null; printf '{\\n  \"n\": 2,\\n}'");
    assert_one_line_error(&o, 1, &["s.json", "not JSON", "line 3, column 1"]);
    // It prints nothing, without reading its input (stdin closed early).
    let o = update("s.json", "exec 0<&-; true");
    assert_one_line_error(&o, 1, &["s.json", "not JSON"]);
    // The file itself is not JSON: the command is not run.
    let o = update("torn.json", "touch ran; cat");
    assert_one_line_error(&o, 1, &["torn.json", "not JSON (line 1, column 6)"]);
    assert!(!d.join("ran").exists());
    let o = update("dir.json", "cat");
    assert_one_line_error(&o, 1, &["dir.json", "a directory"]);
    let o = update("link.json", "cat");
    assert_one_line_error(&o, 1, &["link.json", "symbolic link", "name the target"]);
    let o = update("dangling.json", "cat");
    assert_one_line_error(&o, 1, &["dangling.json", "dangling symbolic link"]);
    assert_eq!(read(d, "s.json"), "{\"n\": 1}\n");
    assert_eq!(read(d, "torn.json"), "{\"n\": ");
    assert!(
        std::fs::symlink_metadata(d.join("link.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!d.join("nowhere.json").exists());
}

#[test]
fn replacing_keeps_the_files_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.json");
    std::fs::write(&f, "1").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = run(baton(dir.path()).args(["state", "update", "s.json", "--", "sh", "-c", INCREMENT]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(dir.path(), "s.json"), "2\n");
    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn a_held_lock_gives_75_with_nonblock_and_cas_gives_up_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), "0").unwrap();
    let mut holder = Command::new(BATON)
        .current_dir(dir.path())
        .args([
            "lock",
            "s.json",
            "--",
            "sh",
            "-c",
            "touch held; exec sleep 30",
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    while !dir.path().join("held").exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = run(baton(dir.path()).args([
        "state", "update", "-n", "s.json", "--", "sh", "-c", INCREMENT,
    ]));
    assert_one_line_error(&o, 75, &["s.json", "not updated"]);
    // baton and the command holding its lock, so the next update need not
    // wait for the sleep to end.
    let ok = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", holder.id())])
        .status()
        .unwrap();
    assert!(ok.success());
    holder.wait().unwrap();
    // Compare-and-swap against a writer that changes the file every time
    // the command runs: it never matches, and gives up after 3 attempts.
    let o = run(baton(dir.path())
        .args([
            "state",
            "update",
            "--cas",
            "--attempts",
            "3",
            "s.json",
            "--",
            "sh",
            "-c",
        ])
        .arg("read n; echo $((n + 7)) > s.json; echo $((n + 1))"));
    assert_one_line_error(&o, 75, &["s.json", "3 attempts"]);
    assert_eq!(read(dir.path(), "s.json").trim(), "21");
}

#[test]
fn a_dead_writers_temp_file_is_removed_by_the_next_update() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.json"), "1\n").unwrap();
    // A writer that died holding the lock, after naming its temp file and
    // before renaming it: its record is still in the sidecar.
    let mut holder = Command::new(BATON)
        .current_dir(d)
        .args([
            "lock",
            "s.json",
            "--",
            "sh",
            "-c",
            "touch held; exec sleep 31.75",
        ])
        .spawn()
        .unwrap();
    while !d.join("held").exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    // baton first (so it cannot release), then its command, which held the
    // inherited lock until now.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let ok = Command::new("pkill")
        .args(["-KILL", "-x", "-f", "sleep 31.75"])
        .status()
        .unwrap();
    assert!(ok.success());
    let leftover = d.join(".s.json.0123456789abcdef0123456789abcdef.tmp");
    std::fs::write(&leftover, "half").unwrap();
    let users = d.join(".s.json.mine.tmp");
    std::fs::write(&users, "not baton's").unwrap();
    let o = run(baton(d).args(["state", "update", "s.json", "--", "sh", "-c", INCREMENT]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(d, "s.json"), "2\n");
    assert!(!leftover.exists(), "the dead writer's temp is gone");
    assert!(users.exists(), "a file baton did not name is kept");
}

#[test]
fn a_command_writing_more_than_the_limit_is_refused_not_stuck() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), "1").unwrap();
    let o = run(baton(dir.path()).args([
        "state",
        "update",
        "s.json",
        "--",
        "sh",
        "-c",
        "cat >/dev/null; head -c 70000000 /dev/zero",
    ]));
    assert_one_line_error(&o, 1, &["s.json", "larger than"]);
    assert_eq!(read(dir.path(), "s.json"), "1");
}

#[test]
fn stdio_offers_the_document_and_offers_again_after_a_lost_race() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("s.json"), "{\"n\": 1}\n").unwrap();
    let mut client = baton(d)
        .args(["state", "update", "--cas", "--stdio", "s.json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut offers = BufReader::new(client.stdout.take().unwrap());
    let mut to = client.stdin.take().unwrap();
    let mut line = String::new();
    offers.read_line(&mut line).unwrap();
    let offer: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        offer,
        serde_json::json!({ "event": "old", "document": { "n": 1 } })
    );
    // Another writer gets there first: the answer to the stale offer is
    // not written, and the new document is offered.
    let other = run(baton(d).args([
        "state",
        "update",
        "s.json",
        "--",
        "sh",
        "-c",
        "cat >/dev/null; echo '{\"n\": 5}'",
    ]));
    assert!(other.status.success(), "{}", stderr(&other));
    writeln!(to, "{{\"n\": 2}}").unwrap();
    line.clear();
    offers.read_line(&mut line).unwrap();
    let offer: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(offer["document"], serde_json::json!({ "n": 5 }));
    writeln!(to, "{{\"n\": 6}}").unwrap();
    assert!(client.wait().unwrap().success());
    assert_eq!(read(d, "s.json"), "{\"n\": 6}\n");
    // Closing stdin instead of answering leaves the file untouched.
    let o = baton(d)
        .args(["state", "update", "--stdio", "s.json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_one_line_error(&o, 1, &["s.json", "no new document", "untouched"]);
    assert_eq!(read(d, "s.json"), "{\"n\": 6}\n");
}
