//! baton's own directories (`.baton/election`, `.baton/claims`), made so
//! that a crash never takes them back to nothing and git never sees them.

use std::io;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::env::Env;
use crate::error::IoFailure;

/// Creates `leaf` and its missing ancestors (and a `.gitignore` of `*` at
/// the top of a `.baton` directory, so nothing of baton's shows in
/// `git status`).
///
/// Each of baton's own directories (from `.baton`, or else from `top`,
/// down to `leaf`) has its entry synced into its parent, whether this call
/// created it or found it: another process may have created it and died
/// before syncing, and a machine crash would then take the whole
/// directory, epochs and claims included, back to nothing (found by the
/// simulator, `baton-election`).
pub fn prepare<E: Env>(env: &E, leaf: &Path, top: &Path) -> Result<(), IoFailure> {
    let chain: Vec<&Path> = leaf
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let ours_from = chain
        .iter()
        .position(|d| d.file_name() == Some(".baton".as_ref()))
        .or_else(|| chain.iter().position(|d| *d == top))
        .unwrap_or(0);
    for (i, dir) in chain.iter().enumerate() {
        if dir.as_os_str().is_empty() || dir.parent().is_none() {
            continue;
        }
        let created = match env.create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(IoFailure::at("create directory", dir)(e)),
        };
        if i >= ours_from {
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            env.sync_dir(parent)
                .map_err(IoFailure::at("sync directory", parent))?;
        }
        if dir.file_name() == Some(".baton".as_ref()) {
            // Also when found without one: its creator may have died
            // between the mkdir and this write.
            let ignore = dir.join(".gitignore");
            let missing = match env.symlink_metadata(&ignore) {
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => return Err(IoFailure::at("stat", &ignore)(e)),
            };
            if created || missing {
                write_atomic(env, &ignore, b"*\n")?;
            }
        }
    }
    Ok(())
}
