//! Disk and permission faults on real mounts: a tiny tmpfs filled to
//! ENOSPC, a read-only mount, a directory an unprivileged user cannot
//! write, and the modes of what baton creates. Each failure is one clear
//! line with exit 1, and nothing is lost or left behind.
//!
//! Mounting needs root: CI runs as root. Elsewhere these tests say they
//! were skipped and pass.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BATON, assert_one_line_error, stderr, walk};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs");
        Tmpfs { _dir: dir, path }
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opts}");
    }

    /// Fills the filesystem until a write fails with ENOSPC.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![b'x'; 4096];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("fill: {e}"),
            }
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn baton_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BATON)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return;
        }
    };
}

#[test]
fn full_disk_refuses_a_new_lock_cleanly_and_leaves_nothing_behind() {
    needs_root!();
    for mode in ["kernel", "file"] {
        let fs = Tmpfs::mount("64k");
        std::fs::write(fs.path.join("tasks.json"), "{}\n").unwrap();
        fs.fill();
        let o = baton_in(
            &fs.path,
            &["lock", "--mode", mode, "-n", "tasks.json", "--", "true"],
        );
        assert_one_line_error(&o, 1, &["No space left on device"]);
        assert_eq!(fs.names(), ["filler", "tasks.json"], "{mode}: left behind");
        assert_eq!(std::fs::read(fs.path.join("tasks.json")).unwrap(), b"{}\n");
    }
}

#[test]
fn full_disk_still_locks_with_an_existing_kernel_sidecar() {
    needs_root!();
    let fs = Tmpfs::mount("64k");
    let o = baton_in(&fs.path, &["lock", "--mode", "kernel", "f", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    fs.fill();
    // flock(2) needs no space, and the record is overwritten in place.
    let o = baton_in(
        &fs.path,
        &[
            "lock", "--mode", "kernel", "f", "--", "sh", "-c", "echo ran",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ran\n");
}

#[test]
fn full_disk_election_fails_cleanly_and_leaves_no_temp_files() {
    needs_root!();
    let fs = Tmpfs::mount("64k");
    std::fs::create_dir(fs.path.join("e")).unwrap();
    fs.fill();
    let o = baton_in(
        &fs.path,
        &["elect", "--dir", "e", "--id", "a", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let last = stderr(&o).lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("baton: ") && last.contains("No space left"),
        "{last}"
    );
    let mut leftovers = Vec::new();
    for entry in walk(&fs.path.join("e")) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            leftovers.push(entry);
        }
    }
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn read_only_mount_is_one_clear_line() {
    needs_root!();
    let fs = Tmpfs::mount("1m");
    let o = baton_in(&fs.path, &["lock", "f", "--", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    fs.remount("ro");
    for mode in ["kernel", "file"] {
        let o = baton_in(&fs.path, &["lock", "--mode", mode, "-n", "f", "--", "true"]);
        assert_one_line_error(&o, 1, &["Read-only file system"]);
    }
    let o = baton_in(
        &fs.path,
        &["elect", "--dir", "e", "--id", "a", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
}

/// A copy of baton another user can execute, whatever the clone's path.
fn public_baton(dir: &Path) -> PathBuf {
    let bin = dir.join("baton");
    std::fs::copy(BATON, &bin).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn unwritable_directory_is_one_clear_line_for_an_unprivileged_user() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let bin = public_baton(dir.path());
    let locked = dir.path().join("readonly");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("tasks.json"), "{}\n").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    for args in [
        &["lock", "-n", "tasks.json", "--", "true"][..],
        &["lock", "--mode", "file", "-n", "tasks.json", "--", "true"],
        &["elect", "--dir", "e", "--id", "a", "--", "true"],
    ] {
        let o = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .args(args)
            .current_dir(&locked)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("baton: ") && last.contains("Permission denied"),
            "{err}"
        );
    }
    let names: Vec<_> = std::fs::read_dir(&locked).unwrap().collect();
    assert_eq!(names.len(), 1, "only tasks.json");
}

#[test]
fn created_files_are_0644_and_directories_0755_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let run = |umask: &str, args: &str| {
        let o = Command::new("sh")
            .current_dir(dir.path())
            .args(["-c", &format!("umask {umask}; exec {BATON} {args}")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{args}: {}", stderr(&o));
    };
    run("022", "lock f -- true");
    run("022", "elect --dir .baton/election --id a -- true");
    let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().mode() & 0o777;
    assert_eq!(mode("f.baton.lock"), 0o644);
    assert_eq!(mode(".baton"), 0o755);
    assert_eq!(mode(".baton/election"), 0o755);
    assert_eq!(mode(".baton/election/members"), 0o755);
    assert_eq!(mode(".baton/election/leader.json"), 0o644);
    assert_eq!(mode(".baton/election/leader.baton.lock"), 0o644);
    assert_eq!(mode(".baton/election/mode"), 0o644);
    // The umask is honoured: 077 takes every bit from group and others.
    run("077", "lock g -- true");
    run("077", "elect --dir other --id a -- true");
    assert_eq!(mode("g.baton.lock"), 0o600);
    assert_eq!(mode("other"), 0o700);
    assert_eq!(mode("other/leader.json"), 0o600);
}

#[test]
fn full_disk_commit_fails_in_one_line_and_leaves_the_branch_and_no_temp_files() {
    needs_root!();
    let fs = Tmpfs::mount("4m");
    let d = &fs.path;
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.name", "f"]);
    git(&["config", "user.email", "f@example.com"]);
    std::fs::write(d.join("a.txt"), "one\n").unwrap();
    let o = baton_in(d, &["commit", "-m", "first", "a.txt"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tip = git(&["rev-parse", "main"]);
    // The change is made while there is room; then the disk fills.
    std::fs::write(d.join("a.txt"), "two\n".repeat(1000)).unwrap();
    fs.fill();
    let o = baton_in(d, &["commit", "-m", "second", "a.txt"]);
    assert_one_line_error(&o, 1, &["No space left on device"]);
    std::fs::remove_file(d.join("filler")).unwrap();
    assert_eq!(git(&["rev-parse", "main"]), tip, "the branch did not move");
    let leftovers: Vec<String> = walk(&d.join(".git"))
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.contains("tmp_") || p.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    git(&["fsck", "--strict"]);
    // With room again, the same commit goes through.
    let o = baton_in(d, &["commit", "-m", "second", "a.txt"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
