//! A branch moved in-process, as git's files backend moves it, when
//! nothing else would happen on the way: no reference-transaction hook, a
//! plain `refs/heads/...` name, a reflog message git would write as given,
//! the files backend. Anything else is git's `update-ref` ([`Defer`]).
//!
//! Interoperating with git rests on taking the same lock: `NAME.lock`,
//! created exclusively, under which the value is read, compared and
//! replaced by a rename. A git process holding it makes this attempt a lost
//! race, and this one holding it makes git's fail, as two gits do.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::inprocess::{Defer, InProcess, Settings, defer};
use super::is_executable;
use super::objects::{self, Id};

impl InProcess {
    /// [`crate::env::git::Git::update_ref`] for a branch, as git's files
    /// backend does it: take `NAME.lock` (created exclusively: a held
    /// lock, git's or ours, is `Moved`), read the branch under it (loose,
    /// else `packed-refs`) and compare, write the new value into the lock
    /// and sync it, append the branch's reflog and HEAD's when HEAD names
    /// the branch, rename the lock over the branch and sync its directory.
    /// `Ok(None)` is a lost compare-and-swap.
    pub fn update_ref(
        &self,
        settings: &Settings,
        name: &str,
        new: &str,
        old: Option<&str>,
        reflog: &str,
    ) -> Result<bool, Defer> {
        if let Some(why) = &settings.ref_blocked {
            return defer(why.clone());
        }
        if !plain_branch(name) {
            return defer("not a plain branch name");
        }
        if is_executable(&self.hooks.join("reference-transaction")) {
            return defer("a reference-transaction hook");
        }
        let Some(message) = reflog_message(reflog) else {
            return defer("a reflog message git would respell");
        };
        let (Some(new_id), Some(committer)) = (objects::from_hex(new), &settings.committer) else {
            return defer("a non-SHA-1 name or no ident");
        };
        let old_id = match old {
            Some(old) => {
                Some(objects::from_hex(old).ok_or_else(|| Defer("a non-SHA-1 name".into()))?)
            }
            None => None,
        };
        let path = self.common_dir.join(name);
        let dir = path.parent().expect("refs/heads/...").to_owned();
        if !dir.is_dir() {
            return defer("the branch's directory does not exist yet");
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let mut lock = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&lock_path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let result = (|| {
            let current = match self.read_branch(name)? {
                Current::Symbolic => return defer("a symbolic branch"),
                Current::Value(v) => v,
            };
            if current != old_id {
                return Ok(false);
            }
            lock.write_all(format!("{new}\n").as_bytes())?;
            lock.sync_all()?;
            let old_hex = current.map_or_else(|| "0".repeat(40), |id| objects::to_hex(&id));
            let line = format!(
                "{old_hex} {} {committer}\t{message}\n",
                objects::to_hex(&new_id)
            );
            self.append_reflog(settings, &self.common_dir.join("logs").join(name), &line)?;
            let head = fs::read(self.git_dir.join("HEAD"))?;
            if head.strip_suffix(b"\n").unwrap_or(&head) == format!("ref: {name}").as_bytes() {
                self.append_reflog(settings, &self.git_dir.join("logs").join("HEAD"), &line)?;
            }
            fs::rename(&lock_path, &path)?;
            fs::File::open(&dir)?.sync_all()?;
            Ok(true)
        })();
        if !matches!(result, Ok(true)) {
            let _ = fs::remove_file(&lock_path);
        }
        result
    }

    /// A branch's value under its lock: the loose file, else its line in
    /// `packed-refs`; `None` if it does not exist.
    fn read_branch(&self, name: &str) -> Result<Current, Defer> {
        match fs::read(self.common_dir.join(name)) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let text = text.trim_end();
                if text.starts_with("ref:") {
                    return Ok(Current::Symbolic);
                }
                return match objects::from_hex(text) {
                    Some(id) => Ok(Current::Value(Some(id))),
                    None => defer("a branch file git would read otherwise"),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let packed = match fs::read(self.common_dir.join("packed-refs")) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Current::Value(None)),
            Err(e) => return Err(e.into()),
        };
        for line in String::from_utf8_lossy(&packed).lines() {
            if let Some((oid, refname)) = line.split_once(' ')
                && refname == name
            {
                return match objects::from_hex(oid) {
                    Some(id) => Ok(Current::Value(Some(id))),
                    None => defer("a packed-refs line git would read otherwise"),
                };
            }
        }
        Ok(Current::Value(None))
    }

    /// Appends `line` to the reflog at `path`: an existing one always (as
    /// git does), a missing one only under `core.logAllRefUpdates`.
    fn append_reflog(&self, settings: &Settings, path: &Path, line: &str) -> Result<(), Defer> {
        let exists = fs::symlink_metadata(path).is_ok();
        if !exists && !settings.create_reflogs {
            return Ok(());
        }
        if !exists {
            fs::create_dir_all(path.parent().expect("logs/..."))?;
        }
        // A reflog that is a symlink is left to git (which follows it).
        let mut log = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o666)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)?;
        log.write_all(line.as_bytes())?;
        Ok(())
    }
}

enum Current {
    Value(Option<Id>),
    Symbolic,
}

/// `refs/heads/...` with no empty, `.` or `..` component and nothing git
/// refuses in a ref name.
pub fn plain_branch(name: &str) -> bool {
    name.strip_prefix("refs/heads/").is_some_and(|rest| {
        rest.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && !c.ends_with(".lock")
                && c.bytes()
                    .all(|b| b > b' ' && b != 0x7f && !b"~^:?*[\\".contains(&b))
        }) && !rest.contains("..")
            && !rest.contains("@{")
    })
}

/// The reflog message as git's update-ref writes it, when that is the
/// message itself: one line, no runs of whitespace, none at either end.
fn reflog_message(message: &str) -> Option<&str> {
    let plain = !message.is_empty()
        && !message.starts_with(char::is_whitespace)
        && !message.ends_with(char::is_whitespace)
        && !message.contains("  ")
        && !message.chars().any(|c| c.is_control());
    plain.then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_branches_and_messages_git_keeps_as_given_are_moved_here() {
        assert!(plain_branch("refs/heads/main"));
        assert!(plain_branch("refs/heads/feature/x-1"));
        for odd in [
            "HEAD",
            "refs/tags/v1",
            "refs/heads/",
            "refs/heads/a//b",
            "refs/heads/.hidden",
            "refs/heads/a..b",
            "refs/heads/x.lock",
            "refs/heads/a b",
            "refs/heads/a@{1}",
            "refs/heads/a~1",
        ] {
            assert!(!plain_branch(odd), "{odd}");
        }
        assert_eq!(reflog_message("commit: fix it"), Some("commit: fix it"));
        for odd in [
            "commit: two  spaces",
            "commit: tab\there",
            " lead",
            "trail ",
            "",
        ] {
            assert_eq!(reflog_message(odd), None, "{odd:?}");
        }
    }
}
