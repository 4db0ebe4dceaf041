//! The stale rules: when a waiter may take a lock file from its holder.
//!
//! Two, and only two, reasons count:
//!
//! 1. **Dead**: the record names a process on this host, this boot and this
//!    pid namespace, and that pid is gone, a zombie, or a later process
//!    (its start time differs). Provable, so the lock is reaped at once.
//! 2. **Unchanged**: the owner cannot be checked (another host, another
//!    boot, another namespace, an unreadable record, or a live pid that does
//!    not hold the lock's kernel lock) and the waiter has seen the lock file
//!    (inode, length, content, mtime) stay exactly the same for the stale
//!    threshold, measured on the waiter's own monotonic clock. A live holder
//!    refreshes the mtime well within the threshold, which restarts the
//!    count.
//!
//! Wall-clock time never enters: neither the record's `acquired_at` nor the
//! file's mtime is ever compared with the waiter's clock, since clocks differ
//! between processes and jump (borgbackup#10077, proper-lockfile#109). The
//! mtime serves only as a change detector.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::time::{Duration, SystemTime};

use crate::env::{FileId, Liveness, MonoTime, ProcessIdentity};
use crate::record::{OwnerRecord, RecordError};

/// Why a lock was taken from its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    OwnerDead {
        pid: u32,
    },
    PidReused {
        pid: u32,
        recorded: u64,
        actual: u64,
    },
    Unchanged {
        for_ms: u64,
        owner: Unverifiable,
    },
}

impl Why {
    /// A stable kebab-case name, for `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            Why::OwnerDead { .. } => "owner-dead",
            Why::PidReused { .. } => "pid-reused",
            Why::Unchanged { .. } => "unchanged",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::OwnerDead { pid } => write!(f, "owner pid {pid} is dead"),
            Why::PidReused {
                pid,
                recorded,
                actual,
            } => write!(
                f,
                "owner pid {pid} was reused (start time {actual}, recorded {recorded})"
            ),
            Why::Unchanged { for_ms, owner } => {
                write!(f, "unchanged for {for_ms} ms and {owner}")
            }
        }
    }
}

/// Why a holder's liveness cannot be checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unverifiable {
    OtherHost {
        host: String,
    },
    OtherBoot,
    OtherPidNamespace,
    Unreadable(RecordError),
    /// The pid is alive but does not hold the lock file's kernel lock: not a
    /// live baton holder (which always does), so liveness proves nothing.
    AliveWithoutKernelLock {
        pid: u32,
    },
}

impl fmt::Display for Unverifiable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unverifiable::OtherHost { host } => write!(f, "owner is on host {host}"),
            Unverifiable::OtherBoot => f.write_str("owner is from another boot"),
            Unverifiable::OtherPidNamespace => f.write_str("owner is in another pid namespace"),
            Unverifiable::Unreadable(e) => write!(f, "owner unknown: {e}"),
            Unverifiable::AliveWithoutKernelLock { pid } => {
                write!(f, "owner pid {pid} is alive but not holding the lock")
            }
        }
    }
}

/// What a waiter concludes about the owner of a lock file whose kernel lock
/// it could take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerCheck {
    /// Provably gone: reap now.
    Dead(Why),
    /// Cannot be checked: reap only after observing no change for the
    /// stale threshold.
    Unverifiable(Unverifiable),
}

/// Applies rule 1 to a record, asking the process table about its pid.
pub fn check_owner(
    record: &Result<OwnerRecord, RecordError>,
    me: &ProcessIdentity,
    liveness: impl FnOnce(u32, u64) -> io::Result<Liveness>,
) -> io::Result<OwnerCheck> {
    let record = match record {
        Ok(r) => r,
        Err(e) => {
            return Ok(OwnerCheck::Unverifiable(Unverifiable::Unreadable(
                e.clone(),
            )));
        }
    };
    if record.host != me.host {
        return Ok(OwnerCheck::Unverifiable(Unverifiable::OtherHost {
            host: record.host.clone(),
        }));
    }
    if record.boot_id != me.boot_id {
        // Most likely an earlier boot of this host, but two machines may share
        // a host name ("localhost" in containers and VMs over one NFS export),
        // so a boot id proves nothing about the owner.
        return Ok(OwnerCheck::Unverifiable(Unverifiable::OtherBoot));
    }
    if record.pid_ns != me.pid_ns {
        return Ok(OwnerCheck::Unverifiable(Unverifiable::OtherPidNamespace));
    }
    debug_assert!(record.checkable_from(me));
    Ok(match liveness(record.pid, record.start_time)? {
        Liveness::Dead => OwnerCheck::Dead(Why::OwnerDead { pid: record.pid }),
        Liveness::Reused { start_time } => OwnerCheck::Dead(Why::PidReused {
            pid: record.pid,
            recorded: record.start_time,
            actual: start_time,
        }),
        Liveness::Alive => {
            OwnerCheck::Unverifiable(Unverifiable::AliveWithoutKernelLock { pid: record.pid })
        }
    })
}

/// Everything a waiter can see of a lock file; any change restarts the
/// stale count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    pub id: FileId,
    pub len: u64,
    pub modified: SystemTime,
    pub content: u64,
}

impl Sighting {
    pub fn new(id: FileId, modified: SystemTime, content: &[u8]) -> Sighting {
        let mut h = DefaultHasher::new();
        content.hash(&mut h);
        Sighting {
            id,
            len: content.len() as u64,
            modified,
            content: h.finish(),
        }
    }
}

/// A waiter's memory of one lock file, on the waiter's monotonic clock.
#[derive(Clone, Debug, Default)]
pub struct StaleWatch {
    first_seen: Option<(Sighting, MonoTime)>,
}

impl StaleWatch {
    /// Records a sighting at `now` and returns how long the lock file has
    /// been seen unchanged (zero on first sight or after any change).
    pub fn observe(&mut self, sighting: Sighting, now: MonoTime) -> Duration {
        match &self.first_seen {
            Some((seen, since)) if *seen == sighting => now.saturating_since(*since),
            _ => {
                self.first_seen = Some((sighting, now));
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Token;
    use crate::record::tests::me;
    use std::time::UNIX_EPOCH;

    fn record_of(pid: u32, start_time: u64) -> OwnerRecord {
        let mut r = OwnerRecord::new(&me(), "other", UNIX_EPOCH, Token(7));
        r.pid = pid;
        r.start_time = start_time;
        r
    }

    fn check(r: &Result<OwnerRecord, RecordError>, alive: Liveness) -> OwnerCheck {
        check_owner(r, &me(), |_, _| Ok(alive)).unwrap()
    }

    #[test]
    fn dead_pid_on_this_host_is_dead() {
        let r = Ok(record_of(77, 5));
        assert_eq!(
            check(&r, Liveness::Dead),
            OwnerCheck::Dead(Why::OwnerDead { pid: 77 })
        );
    }

    #[test]
    fn live_pid_with_another_start_time_was_reused() {
        let r = Ok(record_of(77, 5));
        assert_eq!(
            check(&r, Liveness::Reused { start_time: 9 }),
            OwnerCheck::Dead(Why::PidReused {
                pid: 77,
                recorded: 5,
                actual: 9
            })
        );
    }

    #[test]
    fn live_pid_is_never_dead() {
        let r = Ok(record_of(77, 5));
        assert_eq!(
            check(&r, Liveness::Alive),
            OwnerCheck::Unverifiable(Unverifiable::AliveWithoutKernelLock { pid: 77 })
        );
    }

    #[test]
    fn record_from_another_host_is_never_judged_by_pid() {
        let mut r = record_of(77, 5);
        r.host = "laptop".into();
        let checked = check_owner(&Ok(r), &me(), |_, _| -> io::Result<Liveness> {
            panic!("another host's pid must not be looked up here")
        })
        .unwrap();
        assert_eq!(
            checked,
            OwnerCheck::Unverifiable(Unverifiable::OtherHost {
                host: "laptop".into()
            })
        );
    }

    #[test]
    fn record_from_another_boot_is_unverifiable() {
        // Another boot may be another machine with the same host name.
        let mut r = record_of(77, 5);
        r.boot_id = "boot-before".into();
        assert_eq!(
            check(&Ok(r), Liveness::Dead),
            OwnerCheck::Unverifiable(Unverifiable::OtherBoot)
        );
    }

    #[test]
    fn record_from_another_pid_namespace_is_unverifiable() {
        let mut r = record_of(1, 5);
        r.pid_ns += 1;
        assert_eq!(
            check(&Ok(r), Liveness::Dead),
            OwnerCheck::Unverifiable(Unverifiable::OtherPidNamespace)
        );
    }

    #[test]
    fn unreadable_records_are_unverifiable_never_dead() {
        for bytes in [&b""[..], b"{\"baton\":1,\"pid\"", b"\x00\x01garbage"] {
            let r = OwnerRecord::parse(bytes);
            assert!(matches!(
                check(&r, Liveness::Dead),
                OwnerCheck::Unverifiable(Unverifiable::Unreadable(_))
            ));
        }
    }

    #[test]
    fn record_from_the_future_is_judged_by_its_pid_not_its_time() {
        let mut r = record_of(77, 5);
        r.acquired_at_ms = u64::MAX / 2; // a skewed clock, far ahead
        assert_eq!(
            check(&Ok(r.clone()), Liveness::Dead),
            OwnerCheck::Dead(Why::OwnerDead { pid: 77 })
        );
        assert!(matches!(
            check(&Ok(r), Liveness::Alive),
            OwnerCheck::Unverifiable(_)
        ));
    }

    fn at(s: u64) -> MonoTime {
        MonoTime {
            nanos: s * 1_000_000_000,
        }
    }

    fn sighting(mtime_s: u64, content: &[u8]) -> Sighting {
        Sighting::new(
            FileId { dev: 1, ino: 2 },
            UNIX_EPOCH + Duration::from_secs(mtime_s),
            content,
        )
    }

    #[test]
    fn each_reason_says_what_was_seen() {
        // The text a person reads in `reaped` events and warnings.
        assert_eq!(
            Why::OwnerDead { pid: 42 }.to_string(),
            "owner pid 42 is dead"
        );
        let reused = Why::PidReused {
            pid: 7,
            recorded: 100,
            actual: 200,
        };
        assert_eq!(
            reused.to_string(),
            "owner pid 7 was reused (start time 200, recorded 100)"
        );
    }

    #[test]
    fn unchanged_time_counts_on_the_waiters_clock() {
        let mut w = StaleWatch::default();
        assert_eq!(w.observe(sighting(10, b"x"), at(100)), Duration::ZERO);
        assert_eq!(
            w.observe(sighting(10, b"x"), at(130)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn heartbeat_or_new_content_restarts_the_count() {
        let mut w = StaleWatch::default();
        w.observe(sighting(10, b"x"), at(100));
        assert_eq!(w.observe(sighting(11, b"x"), at(130)), Duration::ZERO);
        assert_eq!(w.observe(sighting(11, b"y"), at(140)), Duration::ZERO);
        assert_eq!(
            w.observe(sighting(11, b"y"), at(150)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn mtime_from_the_future_does_not_make_a_lock_fresh_or_stale() {
        // An mtime years ahead of every clock (a skewed writer): only change
        // matters, so it goes stale after the threshold like any other.
        let mut w = StaleWatch::default();
        let future = sighting(u64::from(u32::MAX) * 4, b"x");
        assert_eq!(w.observe(future.clone(), at(0)), Duration::ZERO);
        assert_eq!(w.observe(future, at(31)), Duration::from_secs(31));
    }
}
