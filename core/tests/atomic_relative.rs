//! Bare file names, relative to the working directory: an atomic write and
//! a fenced append (its own test binary, one test: it changes the
//! process's working directory).
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

use std::path::Path;

use baton_core::atomic::{sweep_temps, write_atomic};
use baton_core::env::real::RealEnv;
use baton_core::fence::{append, entries};

#[test]
fn bare_file_names_are_written_in_the_working_directory() {
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
    append(&env, Path::new("primary.log"), 4, "entry").unwrap();
    assert_eq!(
        entries(&env, Path::new("primary.log")).unwrap(),
        vec![(4, "entry".to_owned())]
    );
}
