//! Atomic replacement of a file's contents: write a temp file beside it,
//! `fsync` it, `rename` it over the target, `fsync` the directory.
//!
//! Readers see the old contents or the new, never a mix or an empty file:
//! `rename` replaces the name atomically, and the data reached the disk
//! before the name pointed at it, so a machine crash cannot leave the
//! target empty or torn (the empty tasks.json of the field). The final
//! directory `fsync` makes the new name itself durable. Composed here, above
//! the environment seam, so the simulator can crash a process between any
//! two steps (unlike cargo's `write_atomic`, sled-style, with both fsyncs).
//!
//! This gives atomicity, not isolation: two writers still race (last rename
//! wins). Serialise read-modify-write with a sidecar lock.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::env::{Env, OpenFile};
use crate::error::IoFailure;
use crate::record::Token;

/// The temp name baton uses beside `path`: `.NAME.TOKEN.tmp`, hidden, unique
/// per writer, in the same directory (so `rename` and `link` stay on one
/// filesystem). [`crate::hygiene`] excludes `.NAME.*.tmp` from git.
pub fn temp_sibling(path: &Path, token: Token) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{token}.tmp"));
    path.with_file_name(name)
}

/// A file being prepared beside `path`, to be published by `link`: unnamed
/// (`O_TMPFILE`) where the filesystem has it, so a process that dies while
/// preparing it leaves nothing behind; else under a hidden temp name
/// ([`temp_sibling`]), removed once linked or discarded.
#[derive(Debug)]
pub struct Staged<F> {
    pub file: F,
    temp: Option<PathBuf>,
}

/// Starts a file to publish as `path`.
pub fn stage<E: Env>(env: &E, path: &Path) -> Result<Staged<E::File>, IoFailure> {
    let dir = parent_dir(path);
    if let Some(file) = env
        .create_unnamed(dir)
        .map_err(IoFailure::at("create file in", dir))?
    {
        return Ok(Staged { file, temp: None });
    }
    let temp = temp_sibling(path, Token::random(env));
    let file = env
        .create_new(&temp)
        .map_err(IoFailure::at("create temp file", &temp))?;
    Ok(Staged {
        file,
        temp: Some(temp),
    })
}

impl<F: OpenFile> Staged<F> {
    /// The name the file has while staged, for messages.
    pub fn shown(&self, path: &Path) -> PathBuf {
        self.temp.clone().unwrap_or_else(|| path.to_owned())
    }

    /// Names the file `path` unless the name exists (`Ok(false)`); `link`
    /// never replaces a name. The temp name, if any, is removed either way.
    pub fn link<E: Env<File = F>>(&self, env: &E, path: &Path) -> Result<bool, IoFailure> {
        let linked = match &self.temp {
            None => self.file.link_to(path),
            Some(temp) => env.hard_link(temp, path),
        };
        let linked = match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(IoFailure::at("create", path)(e)),
        };
        // Once linked, the publish has happened whatever becomes of the
        // temp name: failing here would report a compare-and-swap lost that
        // was won. A temp left by a failed unlink is hidden and excluded
        // from git.
        self.discard(env);
        linked
    }

    /// Gives up: removes the temp name, if any.
    pub fn discard<E: Env<File = F>>(&self, env: &E) {
        if let Some(temp) = &self.temp {
            let _ = env.remove_file(temp);
        }
    }
}

/// Creates `path` holding `bytes`, unless the name exists: the file is
/// written and synced before `link` names it. `link` never replaces an
/// existing name (a user's file, a symlink, another writer's version), so
/// this is a compare-and-swap on the name's absence, and nobody ever sees
/// the new file empty or partial, even after a machine crash. `Ok(false)`
/// when the name was taken. The directory entry is durable only after the
/// caller syncs the directory.
pub fn publish_new<E: Env>(env: &E, path: &Path, bytes: &[u8]) -> Result<bool, IoFailure> {
    let staged = stage(env, path)?;
    let written = staged
        .file
        .write_all_at(bytes, 0)
        .and_then(|()| staged.file.sync_all())
        .map_err(IoFailure::at("write", &staged.shown(path)));
    if let Err(e) = written {
        staged.discard(env);
        return Err(e);
    }
    staged.link(env, path)
}

/// The directory holding `path`.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes the temp files a writer that died mid-[`write_atomic`] left
/// beside `path` (`.NAME.<32 hex digits>.tmp`: only baton makes such
/// names). Call it only while holding the lock every writer of `path`
/// holds, so no live writer's temp is among them. Returns how many.
pub fn sweep_temps<E: Env>(env: &E, path: &Path) -> Result<usize, IoFailure> {
    let dir = parent_dir(path);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(0);
    };
    let prefix = format!(".{name}.");
    let names = env
        .read_dir(dir)
        .map_err(IoFailure::at("read directory", dir))?;
    let mut removed = 0;
    for entry in names {
        let Some(entry) = entry.to_str() else {
            continue;
        };
        let Some(token) = entry
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_suffix(".tmp"))
        else {
            continue;
        };
        if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let temp = dir.join(entry);
        // Never through a symlink, never anything but a file.
        match env.symlink_metadata(&temp) {
            Ok(m) if m.is_file => {}
            _ => continue,
        }
        match env.remove_file(&temp) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IoFailure::at("remove leftover temp file", &temp)(e)),
        }
    }
    Ok(removed)
}

/// Replaces `path`'s contents with `bytes`, atomically and durably.
pub fn write_atomic<E: Env>(env: &E, path: &Path, bytes: &[u8]) -> Result<(), IoFailure> {
    write_atomic_with(env, path, bytes, |_| Ok(()))
}

/// [`write_atomic`], with `prepare` called on the new file once written
/// and before it is synced and named (to set its mode or owner); if it
/// fails, nothing is replaced.
pub fn write_atomic_with<E: Env, Er: From<IoFailure>>(
    env: &E,
    path: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&E::File) -> Result<(), Er>,
) -> Result<(), Er> {
    let dir = parent_dir(path);
    // Unnamed while written and synced, so a writer killed meanwhile
    // leaves nothing; `rename` needs a name, given only at the end.
    let staged = stage(env, path)?;
    let written = staged
        .file
        .write_all_at(bytes, 0)
        .map_err(|e| Er::from(IoFailure::at("write", &staged.shown(path))(e)))
        .and_then(|()| prepare(&staged.file))
        .and_then(|()| {
            staged
                .file
                .sync_all()
                .map_err(|e| IoFailure::at("sync", &staged.shown(path))(e).into())
        });
    if let Err(e) = written {
        staged.discard(env);
        return Err(e);
    }
    let temp = match &staged.temp {
        Some(temp) => temp.clone(),
        None => {
            let temp = temp_sibling(path, Token::random(env));
            staged
                .file
                .link_to(&temp)
                .map_err(IoFailure::at("create temp file", &temp))?;
            temp
        }
    };
    drop(staged);
    if let Err(e) = env.rename(&temp, path) {
        // The target is untouched; do not leave the temp behind.
        let _ = env.remove_file(&temp);
        return Err(IoFailure::at("rename temp file over", path)(e).into());
    }
    env.sync_dir(dir)
        .map_err(|e| IoFailure::at("sync directory", dir)(e).into())
}
