//! Scratch copies of the user's working directory: every run starts from
//! the same files, and nothing a run does reaches the original.

use std::io;
use std::path::{Path, PathBuf};

/// Copies the tree at `from` into `to` (created; must not exist):
/// directories, regular files with their permission bits, symlinks as
/// symlinks (never followed). Sockets, FIFOs and devices are skipped, and
/// so is a directory that holds `to` (the scratch space may sit inside the
/// directory being copied, as `TMPDIR=.` puts it).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir(to)?;
    let to_canon = to.canonicalize()?;
    let mut todo = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = todo.pop() {
        for entry in std::fs::read_dir(&src).map_err(|e| at(&src, e))? {
            let entry = entry.map_err(|e| at(&src, e))?;
            let kind = entry.file_type().map_err(|e| at(&entry.path(), e))?;
            let (s, d) = (entry.path(), dst.join(entry.file_name()));
            if kind.is_dir() {
                if s.canonicalize().is_ok_and(|c| to_canon.starts_with(c)) {
                    continue;
                }
                std::fs::create_dir(&d).map_err(|e| at(&d, e))?;
                todo.push((s, d));
            } else if kind.is_file() {
                std::fs::copy(&s, &d).map_err(|e| at(&s, e))?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&s).map_err(|e| at(&s, e))?;
                std::os::unix::fs::symlink(target, &d).map_err(|e| at(&d, e))?;
            }
        }
    }
    Ok(())
}

/// The most a working directory may hold to be copied for every run.
pub const MAX_FILES: u64 = 50_000;
pub const MAX_BYTES: u64 = 1 << 30;

/// Refuses a tree too large to copy afresh for each run (a home
/// directory given by mistake), naming it and what it holds.
pub fn check_size(dir: &Path) -> io::Result<()> {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| at(&d, e))? {
            let entry = entry.map_err(|e| at(&d, e))?;
            let kind = entry.file_type().map_err(|e| at(&entry.path(), e))?;
            files += 1;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                bytes += entry.metadata().map_or(0, |m| m.len());
            }
            if files > MAX_FILES || bytes > MAX_BYTES {
                return Err(io::Error::other(format!(
                    "{}: more than {MAX_FILES} files or {} MiB, too much to copy for every run: point --dir at the program's own directory",
                    dir.display(),
                    MAX_BYTES >> 20
                )));
            }
        }
    }
    Ok(())
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A fresh directory for one exploration's runs, under the system's
/// temporary directory, removed when dropped unless kept.
#[derive(Debug)]
pub struct Workspace {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Workspace {
    pub fn new(label: &str) -> io::Result<Workspace> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("baton-{label}-"))
            .tempdir()?;
        // The interception library compares paths as the kernel reports
        // them: no symlink in the root's own path.
        let path = dir.path().canonicalize()?;
        Ok(Workspace {
            dir: Some(dir),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place (a failure to look at) and says where.
    pub fn keep(&mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self.path.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_has_the_files_modes_and_symlinks_and_follows_none() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d/a.txt"), b"alpha").unwrap();
        std::fs::write(src.path().join("run.sh"), b"#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            src.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc", src.path().join("out")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let to = dst.path().join("copy");
        copy_tree(src.path(), &to).unwrap();
        assert_eq!(std::fs::read(to.join("d/a.txt")).unwrap(), b"alpha");
        let mode = std::fs::metadata(to.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(to.join("out")).unwrap(),
            Path::new("/etc")
        );
        assert!(
            std::fs::symlink_metadata(to.join("out"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_copy_into_the_tree_being_copied_does_not_copy_itself() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a"), b"a").unwrap();
        std::fs::create_dir_all(src.path().join("tmp/ws")).unwrap();
        let to = src.path().join("tmp/ws/run0");
        copy_tree(src.path(), &to).unwrap();
        assert_eq!(std::fs::read(to.join("a")).unwrap(), b"a");
        assert!(
            !to.join("tmp").exists(),
            "the directory holding the copy is left out"
        );
    }
}
