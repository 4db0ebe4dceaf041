//! The names every world shares: invariants and catalogued protocols.
//!
//! The simulator's oracle and the models' properties check these invariants
//! under these names, and every report prints one table over this
//! catalogue. Names are kebab-case and never change. The protocols marked
//! [`Expect::Violates`] are known-bad on purpose (the field's bugs, kept as
//! regression scenarios); their code lives only in the simulator and the
//! models, never here.

use std::fmt;

/// A property that must hold in every world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Never two live holders of one lock.
    MutualExclusion,
    /// Never two instances acting as primary.
    SinglePrimary,
    /// Every acknowledged state update is in the final state.
    NoLostUpdate,
    /// A reader never sees a partial or empty state file.
    NoTornState,
    /// Every commit contains only its own task's edits.
    NoCrossCommit,
    /// A path is claimed by at most one live instance.
    Claims,
    /// Once faults stop, waiters acquire and primaries are elected within
    /// the stated bound.
    Liveness,
}

impl Invariant {
    pub const ALL: [Invariant; 7] = [
        Invariant::MutualExclusion,
        Invariant::SinglePrimary,
        Invariant::NoLostUpdate,
        Invariant::NoTornState,
        Invariant::NoCrossCommit,
        Invariant::Claims,
        Invariant::Liveness,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::MutualExclusion => "mutual-exclusion",
            Invariant::SinglePrimary => "single-primary",
            Invariant::NoLostUpdate => "no-lost-update",
            Invariant::NoTornState => "no-torn-state",
            Invariant::NoCrossCommit => "no-cross-commit",
            Invariant::Claims => "claims",
            Invariant::Liveness => "liveness",
        }
    }

    pub fn from_name(name: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == name)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What running a protocol must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every invariant holds.
    Holds,
    /// The checker must find this invariant broken.
    Violates(Invariant),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Holds => f.write_str("holds"),
            Expect::Violates(i) => write!(f, "violates {i}"),
        }
    }
}

/// A catalogued protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub name: &'static str,
    /// Where it comes from (a seed bug report, or baton).
    pub source: &'static str,
    pub expect: Expect,
}

/// Every protocol the simulator or the models run, in report order.
pub const PROTOCOLS: &[Protocol] = &[
    Protocol {
        name: "naive-reap",
        source: "seed 002: check age, delete, create",
        expect: Expect::Violates(Invariant::MutualExclusion),
    },
    Protocol {
        name: "registry-rmw",
        source: "seed 001: one JSON lock file, read-modify-write, alone means primary",
        expect: Expect::Violates(Invariant::SinglePrimary),
    },
    Protocol {
        name: "registry-150ms",
        source: "seed 001 fix: list registration, 150 ms delay, smallest id wins",
        expect: Expect::Violates(Invariant::SinglePrimary),
    },
    Protocol {
        name: "dir-election",
        source: "seed 000: a file per instance, smallest id, mtime refresh, stale cleanup",
        expect: Expect::Violates(Invariant::SinglePrimary),
    },
    Protocol {
        name: "baton-lock-kernel",
        source: "baton: flock on a never-unlinked sidecar",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-file",
        source: "baton: linked lock file, inode-locked reaping",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-shared",
        source: "baton: shared and exclusive flock on one sidecar",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-handle",
        source: "baton: kernel mode through sidecars kept open",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-file-noflock",
        source: "baton: exclusive-file mode on a filesystem that rejects flock",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-file-noopflock",
        source: "baton: exclusive-file mode on a filesystem whose flock grants everything",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-file-two-hosts",
        source: "baton: exclusive-file mode on NFS, one process on a second host with its own clock, kernel locks shared by both hosts (NLM)",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-file-two-hosts-local",
        source: "baton: the same with host-local kernel locks (local_lock=flock): nothing reaped by observation",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-file-foreign",
        source: "baton: exclusive-file mode while another tool removes, replaces or truncates its lock file",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-lock-kernel-foreign",
        source: "baton: kernel mode while another tool removes, replaces or truncates its sidecar",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-election",
        source: "baton: held leader lock, durable epochs, fenced log",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-election-reaped",
        source: "baton: the election with reap and status running during joins",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-election-lease",
        source: "baton: lease by versioned CAS, within its pause and drift bounds",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-election-lease-paused",
        source: "baton: lease past its pause bound; the fence keeps the log exactly-once",
        expect: Expect::Holds,
    },
    Protocol {
        name: "state-rmw-unlocked",
        source: "seed 002 before the fix: read, modify, write, no lock",
        expect: Expect::Violates(Invariant::NoLostUpdate),
    },
    Protocol {
        name: "state-write-in-place",
        source: "seed 002: truncate and write in place, no temp file or rename",
        expect: Expect::Violates(Invariant::NoTornState),
    },
    Protocol {
        name: "baton-state",
        source: "baton: read, compute, replace atomically under the sidecar lock",
        expect: Expect::Holds,
    },
    Protocol {
        name: "baton-state-cas",
        source: "baton: compute unlocked, replace if unchanged (content compare-and-swap)",
        expect: Expect::Holds,
    },
    Protocol {
        name: "claims-shared-json",
        source: "seed 004 Option A: one ACTIVE-TASKS file read-modify-written by all, 5-minute stale cleanup",
        expect: Expect::Violates(Invariant::Claims),
    },
    Protocol {
        name: "baton-claims",
        source: "baton: per-path claim files, all or nothing under a short directory lock, kernel-locked",
        expect: Expect::Holds,
    },
    Protocol {
        name: "commit-shared-index",
        source: "seed 003 today: git add, git commit on the shared index",
        expect: Expect::Violates(Invariant::NoCrossCommit),
    },
    Protocol {
        name: "commit-lock-staging",
        source: "seed 003 plan: a global lock around add and commit only",
        expect: Expect::Violates(Invariant::NoCrossCommit),
    },
    Protocol {
        name: "baton-txn",
        source: "baton: scope lock from first edit to commit, private index",
        expect: Expect::Holds,
    },
];

pub fn protocol(name: &str) -> Option<&'static Protocol> {
    PROTOCOLS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariant_names_round_trip_and_are_kebab_case() {
        for i in Invariant::ALL {
            assert_eq!(Invariant::from_name(i.name()), Some(i));
            assert!(i.name().chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
    }

    #[test]
    fn protocol_names_are_unique() {
        for (i, p) in PROTOCOLS.iter().enumerate() {
            assert!(
                PROTOCOLS[i + 1..].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
        }
    }
}
