//! Checking a user's own program, not a model of it: `baton explore` runs
//! several copies of it and schedules their file-system calls one at a
//! time (random or PCT, with kills and clock skew), `baton crashes` records
//! one run and checks every state a machine crash could leave.
//!
//! The calls are seen by `libbaton_intercept.so`, preloaded into the
//! program (see that crate for what it can and cannot see); the
//! schedulers and the durability model are the simulator's own.

// This crate is the outside world's side: it starts processes, copies
// directories and reads clocks, as `baton-core`'s real environment does.
#![allow(clippy::disallowed_methods)]

pub mod crashes;
pub mod explore;
pub mod scratch;
pub mod session;

/// `libbaton_intercept.so`, built with this crate (see `build.rs`).
pub const INTERCEPT_SO: &[u8] = include_bytes!(env!("BATON_INTERCEPT_SO"));

/// Writes the interception library into `dir` and returns its path.
pub fn install_intercept(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("libbaton_intercept.so");
    std::fs::write(&path, INTERCEPT_SO)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}
