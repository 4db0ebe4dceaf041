//! What the real-repository tests share: running git, and a fresh
//! repository with an identity and no signing.
#![allow(clippy::disallowed_methods, dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs git in `dir`; its output. Fails the test if git does.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git init` on branch `main`, committing as `name`.
pub fn init(dir: &Path, name: &str) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", name]);
    git(
        dir,
        &["config", "user.email", &format!("{name}@example.com")],
    );
    git(dir, &["config", "commit.gpgSign", "false"]);
}
