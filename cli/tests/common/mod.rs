//! Helpers shared by the real-process tests of the `baton` binary.
#![allow(dead_code, clippy::disallowed_methods)] // each test file uses a subset

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");

pub fn baton(dir: &Path) -> Command {
    let mut c = Command::new(BATON);
    c.current_dir(dir);
    c
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run baton")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts `o` failed with `code` and exactly one stderr line in baton's
/// shape that contains every one of `needles`.
pub fn assert_one_line_error(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("baton: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

/// Runs baton in `dir` with `args` and a 20 s deadline; its exit code and
/// stderr, or `None` if it had to be killed.
pub fn run_bounded(dir: &Path, args: &[String]) -> Option<(i32, String)> {
    run_bounded_with(Command::new(BATON).current_dir(dir).args(args))
}

/// [`run_bounded`] for a command set up by the caller.
pub fn run_bounded_with(cmd: &mut Command) -> Option<(i32, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baton");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait for baton") {
            let mut err = String::new();
            let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
            return Some((status.code().unwrap_or(-1), err));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `path` exists (a command under test has started).
pub fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every path below `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
