//! A fenced sink: an append-only log that rejects entries whose epoch is
//! older than the newest it has accepted.
//!
//! A primary stamps everything it does with its term's epoch. Even if an
//! old primary kept running after losing its term (paused past a lease,
//! or a protocol without held leadership), its writes stop landing as soon
//! as the new primary's first one has: the resource itself rejects the
//! lower token (Kleppmann's fencing). Each line is `EPOCH<TAB>ENTRY`;
//! appends are serialised by the log's sidecar lock (kernel mode, or
//! exclusive-file mode on a network filesystem) and made
//! durable (file and directory) before the append returns. A torn last line
//! left by a machine crash was never acknowledged: readers skip it and the
//! next append overwrites it.

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::env::{Env, OpenFile};
use crate::error::IoFailure;
use crate::lock::{self, LockError, LockOptions, Wait};

/// How long an append waits for another appender.
const APPEND_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{}: epoch {epoch} is fenced off: the log has seen epoch {newest}", path.display())]
    Fenced {
        path: std::path::PathBuf,
        epoch: u64,
        newest: u64,
    },
    #[error("{}: busy for longer than {APPEND_WAIT:?}", path.display())]
    Busy { path: std::path::PathBuf },
}

/// The entries of a log, in order: (epoch, entry). Lines that are not
/// `EPOCH<TAB>ENTRY` (written by something else) are skipped.
pub fn entries<E: Env>(env: &E, log: &Path) -> Result<Vec<(u64, String)>, IoFailure> {
    let bytes = match env.read(log, u64::MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(IoFailure::at("read", log)(e)),
    };
    Ok(parse(&bytes))
}

/// The length of the complete lines in `bytes`: a machine crash during an
/// append can leave a torn last line, never acknowledged, which does not
/// count and is overwritten by the next append.
fn complete(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

fn parse(bytes: &[u8]) -> Vec<(u64, String)> {
    String::from_utf8_lossy(&bytes[..complete(bytes)])
        .lines()
        .filter_map(|line| {
            // Lines written by something else are skipped too.
            let (epoch, entry) = line.split_once('\t')?;
            Some((epoch.parse().ok()?, entry.to_owned()))
        })
        .collect()
}

/// Appends `entry` under `epoch`, unless a newer epoch has written.
pub fn append<E: Env>(env: &E, log: &Path, epoch: u64, entry: &str) -> Result<(), FenceError> {
    assert!(!entry.contains('\n'), "a log entry is one line");
    // Kernel mode where kernel locks are trusted; exclusive-file mode on the
    // network filesystems lease-mode primaries write from.
    let mode = lock::mode_for(env, log)?;
    let opts = LockOptions::new(mode, Wait::For(APPEND_WAIT));
    let Some(guard) = lock::acquire(env, log, &opts, &mut |_| {})? else {
        return Err(FenceError::Busy {
            path: log.to_owned(),
        });
    };
    let file = env
        .open(log, true)
        .map_err(IoFailure::at("open log", log))?;
    let bytes = file
        .read_all(u64::MAX)
        .map_err(IoFailure::at("read log", log))?;
    let newest = parse(&bytes).iter().map(|(e, _)| *e).max().unwrap_or(0);
    if epoch < newest {
        return Err(FenceError::Fenced {
            path: log.to_owned(),
            epoch,
            newest,
        });
    }
    let line = format!("{epoch}\t{entry}\n");
    let end = complete(&bytes);
    file.set_len(end as u64)
        .and_then(|()| file.write_all_at(line.as_bytes(), end as u64))
        .and_then(|()| file.sync_all())
        .map_err(IoFailure::at("append to log", log))?;
    drop(file);
    // The log's name is durable only once its directory is synced, and the
    // appender that created it may have died before syncing: so every
    // append syncs the directory before acknowledging (the simulator found
    // both an unsynced new log and a creator crashed between the two
    // fsyncs losing acknowledged entries after a machine crash).
    let dir = match log.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    env.sync_dir(dir)
        .map_err(IoFailure::at("sync directory", dir))?;
    guard.release()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_last_line_is_not_an_entry() {
        let bytes = b"1\tone\n2\ttwo\n3\tth";
        assert_eq!(complete(bytes), 12);
        assert_eq!(
            parse(bytes),
            vec![(1, "one".to_owned()), (2, "two".to_owned())]
        );
        assert_eq!(parse(b"no tab\n7\tseven\n"), vec![(7, "seven".to_owned())]);
    }

    mod fuzz {
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_log_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let end = super::super::complete(&bytes);
                prop_assert!(end <= bytes.len());
                prop_assert!(end == 0 || bytes[end - 1] == b'\n');
                let _ = super::super::parse(&bytes);
            }
        }
    }
}
