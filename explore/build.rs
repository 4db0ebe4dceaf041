//! Builds `libbaton_intercept.so` so the `baton` binary can carry it: a
//! preloaded library must be a file of its own, and `cargo build` does not
//! build one workspace crate as an artifact of another. A nested cargo in
//! its own target directory (its own lock) builds it in release mode; the
//! library is then included as bytes and written next to each exploration.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest.parent().expect("explore/ sits in the workspace");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let target = out.join("intercept-target");
    for dir in ["intercept/src", "trace/src"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for file in ["intercept/Cargo.toml", "trace/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "baton-intercept",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The outer build's flags are for the outer build (loom's cfg, a
        // coverage run's instrumentation): not for a preloaded library.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        // Under `cargo clippy` the outer build lints through a wrapper; the
        // library is linted as a workspace member, not here.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .status()
        .expect("run cargo to build baton-intercept");
    assert!(status.success(), "building baton-intercept failed");
    let lib = target.join("release/libbaton_intercept.so");
    assert!(lib.is_file(), "{} was not built", lib.display());
    println!("cargo:rustc-env=BATON_INTERCEPT_SO={}", lib.display());
}
