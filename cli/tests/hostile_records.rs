//! Hostile files: every record baton reads (lock, member, leader, lease,
//! mode), planted empty, truncated, binary, as a 1 GiB sparse file, as JSON
//! of the wrong shape, from the future, naming pid 1 or a live pid; and a
//! symlink, FIFO, socket or directory where a file is expected. For each,
//! every command that reads it must end within bounds with a documented
//! exit code and, on failure, one clear line; never panic, abort or hang;
//! and never change what it did not write (a symlink's target, a user's
//! bytes). The table of outcomes is written to
//! `target/hostile-records.md` for `reports/reliability.md`.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

mod common;

use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::run_bounded;

/// What is planted.
#[derive(Clone, Copy, Debug)]
enum Plant {
    Empty,
    TruncatedRecord,
    Binary,
    Sparse1GiB,
    WrongShapeJson,
    FromTheFuture,
    NamesPid1,
    NamesLivePid,
    SymlinkToUserFile,
    Fifo,
    Socket,
    Directory,
}

const PLANTS: [Plant; 12] = [
    Plant::Empty,
    Plant::TruncatedRecord,
    Plant::Binary,
    Plant::Sparse1GiB,
    Plant::WrongShapeJson,
    Plant::FromTheFuture,
    Plant::NamesPid1,
    Plant::NamesLivePid,
    Plant::SymlinkToUserFile,
    Plant::Fifo,
    Plant::Socket,
    Plant::Directory,
];

fn owner_record(pid: u32, acquired_at_ms: u64) -> String {
    format!(
        r#"{{"baton":1,"pid":{pid},"start_time":1,"boot_id":"b","pid_ns":1,"host":"h","instance":"i","acquired_at_ms":{acquired_at_ms},"token":"00"}}"#
    )
}

/// Plants `what` at `path`; returns the bytes a foreign file holds (to
/// check they are unchanged), if it is a regular file or a symlink target.
fn plant(path: &Path, kind: &str, what: Plant, user_file: &Path) -> Option<Vec<u8>> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let record = |pid: u32, ms: u64| -> String {
        match kind {
            "leader" => format!(
                r#"{{"epoch":{},"id":"x","pid":{pid},"host":"h","elected_at_ms":{ms}}}"#,
                if ms > 1 << 50 { u64::MAX } else { 3 }
            ),
            "lease" => format!(
                r#"{{"seq":1,"epoch":{},"holder":"x"}}"#,
                if ms > 1 << 50 { u64::MAX } else { 3 }
            ),
            "mode" => r#"{"baton":1,"mode":"kernel"}"#.to_owned(),
            "claim" => format!(
                r#"{{"baton":1,"path":"src/x","id":"x","task":"","pid":{pid},"start_time":1,"boot_id":"b","pid_ns":1,"host":"h","claimed_at_ms":{ms},"expires_boot_ms":null}}"#
            ),
            "state" => format!(r#"{{"pid": {pid}, "at": {ms}}}"#),
            _ => owner_record(pid, ms),
        }
    };
    let bytes: Vec<u8> = match what {
        Plant::Empty => Vec::new(),
        Plant::TruncatedRecord => record(4242, 1).as_bytes()[..17].to_vec(),
        Plant::Binary => vec![0xff, 0x00, 0xfe, b'\n', 0x7f, 0x80],
        // Valid JSON, another tool's (it does not start as baton's records do).
        Plant::WrongShapeJson => {
            br#"{"pid":"nine","epoch":[],"mode":7,"seq":-1,"baton":"x"}"#.to_vec()
        }
        Plant::FromTheFuture => record(4242, u64::MAX / 2).into_bytes(),
        Plant::NamesPid1 => record(1, 1).into_bytes(),
        Plant::NamesLivePid => record(std::process::id(), 1).into_bytes(),
        Plant::Sparse1GiB => {
            let f = std::fs::File::create(path).unwrap();
            f.set_len(1 << 30).unwrap();
            return None;
        }
        Plant::SymlinkToUserFile => {
            symlink(user_file, path).unwrap();
            return Some(std::fs::read(user_file).unwrap());
        }
        Plant::Fifo => {
            let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
            assert!(ok);
            return None;
        }
        Plant::Socket => {
            std::mem::forget(UnixListener::bind(path).unwrap());
            return None;
        }
        Plant::Directory => {
            std::fs::create_dir(path).unwrap();
            return None;
        }
    };
    std::fs::write(path, &bytes).unwrap();
    Some(bytes)
}

struct Case {
    /// Which record: its path under the work dir, and its kind.
    file: &'static str,
    kind: &'static str,
    /// Files to lay first (e.g. the election's mode).
    setup: &'static [(&'static str, &'static str)],
    commands: &'static [&'static [&'static str]],
}

const CASES: &[Case] = &[
    Case {
        file: "f.baton.lock",
        kind: "lock",
        setup: &[],
        commands: &[
            &["lock", "--mode", "kernel", "-n", "f", "--", "true"],
            &[
                "lock", "--mode", "file", "--stale", "0.2", "-w", "1", "f", "--", "true",
            ],
        ],
    },
    Case {
        file: "e/members/x.member",
        kind: "member",
        setup: &[("e/mode", r#"{"baton":1,"mode":"kernel"}"#)],
        commands: &[
            &["status", "--dir", "e"],
            &["reap", "--dir", "e"],
            &["elect", "--dir", "e", "--id", "x", "--", "true"],
        ],
    },
    Case {
        file: "e/leader.json",
        kind: "leader",
        setup: &[("e/mode", r#"{"baton":1,"mode":"kernel"}"#)],
        commands: &[
            &["status", "--dir", "e"],
            &["elect", "--dir", "e", "--id", "a", "--", "true"],
        ],
    },
    Case {
        file: "e/leader.baton.lock",
        kind: "lock",
        setup: &[("e/mode", r#"{"baton":1,"mode":"kernel"}"#)],
        commands: &[
            &["status", "--dir", "e"],
            &["elect", "--dir", "e", "--id", "a", "--", "true"],
        ],
    },
    Case {
        file: "e/lease/00000000000000000001.json",
        kind: "lease",
        setup: &[("e/mode", r#"{"baton":1,"mode":"lease"}"#)],
        commands: &[
            &["status", "--dir", "e"],
            &[
                "elect", "--dir", "e", "--id", "a", "--mode", "lease", "--ttl", "0.3", "--", "true",
            ],
        ],
    },
    Case {
        file: ".baton/claims/src%2Fx.claim",
        kind: "claim",
        setup: &[],
        commands: &[
            &["claim", "--id", "a", "src/x", "--", "true"],
            &["who", "src/x"],
            &["release", "--id", "a", "src/x"],
            &["status"],
        ],
    },
    Case {
        file: "s.json",
        kind: "state",
        setup: &[],
        commands: &[
            &["state", "get", "s.json"],
            &[
                "state",
                "update",
                "s.json",
                "--",
                "sh",
                "-c",
                "cat >/dev/null; echo 1",
            ],
            &[
                "state",
                "update",
                "--cas",
                "s.json",
                "--",
                "sh",
                "-c",
                "cat >/dev/null; echo 1",
            ],
        ],
    },
    Case {
        file: "e/mode",
        kind: "mode",
        setup: &[],
        commands: &[
            &["status", "--dir", "e"],
            &["elect", "--dir", "e", "--id", "a", "--", "true"],
        ],
    },
];

#[test]
fn every_record_baton_reads_survives_every_hostile_plant() {
    let mut table = vec![
        "| record | planted | command | exit | outcome |".to_owned(),
        "|---|---|---|---:|---|".to_owned(),
    ];
    for case in CASES {
        for what in PLANTS {
            for args in case.commands {
                let dir = tempfile::tempdir().unwrap();
                let user_file = dir.path().join("users-precious-file");
                std::fs::write(&user_file, "precious\n").unwrap();
                for (path, text) in case.setup {
                    let p = dir.path().join(path);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(p, text).unwrap();
                }
                let planted: PathBuf = dir.path().join(case.file);
                let before = plant(&planted, case.kind, what, &user_file);
                let label = format!("{} / {what:?} / baton {}", case.file, args.join(" "));
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                let Some((code, err)) = run_bounded(dir.path(), &args) else {
                    panic!("{label}: did not finish in 20 s");
                };
                assert!(
                    matches!(code, 0 | 1 | 75),
                    "{label}: exit {code} (101 is a panic, 134 an abort): {err}"
                );
                let last = err.lines().last().unwrap_or_default().to_owned();
                if code == 1 {
                    assert!(last.starts_with("baton: "), "{label}: {err}");
                }
                assert!(!err.contains("panicked"), "{label}: {err}");
                // The user's file behind a symlink is never touched.
                assert_eq!(std::fs::read(&user_file).unwrap(), b"precious\n", "{label}");
                // Bytes that are not a baton record are never rewritten or
                // removed; a symlink stays a symlink.
                let foreign = matches!(what, Plant::Binary | Plant::WrongShapeJson)
                    || matches!(what, Plant::SymlinkToUserFile);
                if foreign && let Some(bytes) = &before {
                    let meta = std::fs::symlink_metadata(&planted)
                        .unwrap_or_else(|e| panic!("{label}: removed: {e}"));
                    if matches!(what, Plant::SymlinkToUserFile) {
                        assert!(meta.file_type().is_symlink(), "{label}");
                    } else if matches!(case.kind, "lock" | "member" | "claim")
                        // A state file is the user's document, which an
                        // update replaces by design when it is JSON.
                        || (case.kind == "state" && matches!(what, Plant::Binary))
                    {
                        assert_eq!(&std::fs::read(&planted).unwrap(), bytes, "{label}");
                    }
                }
                let outcome = match code {
                    0 => "ok".to_owned(),
                    _ => last.replace('|', "/"),
                };
                table.push(format!(
                    "| `{}` | {what:?} | `baton {}` | {code} | {outcome} |",
                    case.file,
                    args.join(" ")
                ));
            }
        }
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-records.md");
    std::fs::write(&out, table.join("\n") + "\n").unwrap();
}
