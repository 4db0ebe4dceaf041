//! An atomic write to a bare file name, relative to the working directory
//! (its own test binary: it changes the process's working directory).
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

use std::path::Path;

use baton_core::atomic::{sweep_temps, write_atomic};
use baton_core::env::real::RealEnv;

#[test]
fn a_bare_file_name_is_written_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let env = RealEnv::new().unwrap();
    write_atomic(&env, Path::new("state.json"), b"{}").unwrap();
    assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), b"{}");
    std::fs::write(
        dir.path()
            .join(".state.json.0123456789abcdef0123456789abcdef.tmp"),
        b"x",
    )
    .unwrap();
    assert_eq!(sweep_temps(&env, Path::new("state.json")).unwrap(), 1);
}
