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

/// Creates `path` holding `bytes`, unless the name exists: a temp file is
/// written and synced, then `link`ed into place. `link` never replaces an
/// existing name (a user's file, a symlink, another writer's version), so
/// this is a compare-and-swap on the name's absence, and nobody ever sees
/// the new file empty or partial, even after a machine crash. `Ok(false)`
/// when the name was taken. The directory entry is durable only after the
/// caller syncs the directory.
pub fn publish_new<E: Env>(env: &E, path: &Path, bytes: &[u8]) -> Result<bool, IoFailure> {
    let temp = temp_sibling(path, Token::random(env));
    let file = env
        .create_new(&temp)
        .map_err(IoFailure::at("create temp file", &temp))?;
    let written = file
        .write_all_at(bytes, 0)
        .and_then(|()| file.sync_all())
        .map_err(IoFailure::at("write temp file", &temp));
    drop(file);
    let linked = written.and_then(|()| match env.hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(IoFailure::at("create", path)(e)),
    });
    // Once linked, the publish has happened whatever becomes of the temp
    // name: failing here would report a compare-and-swap lost that was won.
    // A temp left by a failed unlink is hidden and excluded from git.
    let _ = env.remove_file(&temp);
    linked
}

/// Replaces `path`'s contents with `bytes`, atomically and durably.
pub fn write_atomic<E: Env>(env: &E, path: &Path, bytes: &[u8]) -> Result<(), IoFailure> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = temp_sibling(path, Token::random(env));

    let file = env
        .create_new(&temp)
        .map_err(IoFailure::at("create temp file", &temp))?;
    let written = file
        .write_all_at(bytes, 0)
        .and_then(|()| file.sync_all())
        .map_err(IoFailure::at("write temp file", &temp));
    drop(file);
    let renamed = written.and_then(|()| {
        env.rename(&temp, path)
            .map_err(IoFailure::at("rename temp file over", path))
    });
    if let Err(e) = renamed {
        // The target is untouched; do not leave the temp behind.
        let _ = env.remove_file(&temp);
        return Err(e);
    }
    env.sync_dir(dir)
        .map_err(IoFailure::at("sync directory", dir))
}
