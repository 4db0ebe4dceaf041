//! Helpers shared by the real-process tests of the `baton` binary.
#![allow(dead_code, clippy::disallowed_methods)] // each test file uses a subset

use std::path::Path;
use std::process::{Command, Output};

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
