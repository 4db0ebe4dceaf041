//! Faults, drawn from the seed.
//!
//! Swarm testing, as the VOPR does: each run draws its own fault *rates*,
//! so some seeds crash often and never pause, others pause and skew clocks
//! but never crash. And BUGGIFY, as FoundationDB does: each call site is
//! activated for faults in a run with probability one half, then fires
//! with the run's rate. Rare combinations come up in some seed instead of
//! being averaged away in every one.
//!
//! Fault decisions come from their own random stream, one draw per call,
//! whether or not a fault fires, so suppressing one fault (when shrinking)
//! leaves the others where they were.

use std::collections::BTreeSet;

use crate::rng::Rng;

/// An environment call, as a place a fault can strike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    CreateNew,
    CreateUnnamed,
    Open,
    Read,
    HardLink,
    LinkTo,
    SetPermissions,
    SetOwner,
    SinceBoot,
    Rename,
    RemoveFile,
    ReadDir,
    Metadata,
    SetModified,
    CreateDir,
    SyncDir,
    FsKind,
    Canonicalize,
    FileMetadata,
    ReadAll,
    WriteAllAt,
    SetLen,
    SyncAll,
    FileSetModified,
    TryLock,
    Lock,
    Unlock,
    Wall,
    Monotonic,
    Sleep,
    Liveness,
    Random,
    /// One git command of the simulated git ([`crate::git`]).
    Git,
}

impl Site {
    /// New sites go last: activations are drawn in this order, so seeds
    /// (and replay tokens) of older scenarios keep their meaning.
    pub const ALL: [Site; 33] = [
        Site::CreateNew,
        Site::Open,
        Site::Read,
        Site::HardLink,
        Site::Rename,
        Site::RemoveFile,
        Site::ReadDir,
        Site::Metadata,
        Site::SetModified,
        Site::CreateDir,
        Site::SyncDir,
        Site::FsKind,
        Site::Canonicalize,
        Site::FileMetadata,
        Site::ReadAll,
        Site::WriteAllAt,
        Site::SetLen,
        Site::SyncAll,
        Site::FileSetModified,
        Site::TryLock,
        Site::Lock,
        Site::Unlock,
        Site::Wall,
        Site::Monotonic,
        Site::Sleep,
        Site::Liveness,
        Site::Random,
        Site::CreateUnnamed,
        Site::LinkTo,
        Site::SetPermissions,
        Site::SetOwner,
        Site::SinceBoot,
        Site::Git,
    ];

    /// The errors this call can really return on a local filesystem, for
    /// injection. Calls that cannot fail get none.
    pub fn io_errors(self) -> &'static [i32] {
        use crate::fs::{EACCES, EIO, ENOLCK, ENOSPC};
        match self {
            Site::CreateNew
            | Site::CreateUnnamed
            | Site::CreateDir
            | Site::HardLink
            | Site::LinkTo => &[ENOSPC, EACCES, EIO],
            Site::Open => &[EACCES, EIO],
            Site::Rename | Site::RemoveFile => &[EACCES, EIO],
            Site::WriteAllAt | Site::SetLen => &[ENOSPC, EIO],
            Site::SyncAll | Site::SyncDir | Site::Read | Site::ReadAll | Site::ReadDir => &[EIO],
            // flock(2) runs out of lock records (ENOLCK), rare but real;
            // EINTR is not injected: it needs a signal handler installed
            // without SA_RESTART, and baton installs no handler at all.
            Site::TryLock | Site::Lock => &[ENOLCK],
            Site::Metadata
            | Site::FileMetadata
            | Site::SetModified
            | Site::FileSetModified
            | Site::SetPermissions
            | Site::SetOwner => &[EIO],
            _ => &[],
        }
    }
}

/// Which kinds of fault a run may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultKinds {
    pub crash: bool,
    pub pause: bool,
    pub machine_crash: bool,
    pub io_errors: bool,
    pub clock_skew: bool,
    pub pid_reuse: bool,
    /// Another tool or a person removing, replacing or truncating the
    /// scenario's foreign targets (`rm`, `git clean -x`): not a fault any
    /// lock survives (mutual exclusion is gone once a held lock file is
    /// deleted), so not in [`FaultKinds::ALL`]. Checked instead: baton
    /// notices where it promises to, and never touches what it did not
    /// create.
    pub foreign: bool,
}

impl FaultKinds {
    /// Every fault a protocol must survive (all but `foreign`).
    pub const ALL: FaultKinds = FaultKinds {
        crash: true,
        pause: true,
        machine_crash: true,
        io_errors: true,
        clock_skew: true,
        pid_reuse: true,
        foreign: false,
    };
    pub const NONE: FaultKinds = FaultKinds {
        crash: false,
        pause: false,
        machine_crash: false,
        io_errors: false,
        clock_skew: false,
        pid_reuse: false,
        foreign: false,
    };
}

/// One letter per kind, for replay tokens and the command line.
const LETTERS: [(char, &str); 7] = [
    ('c', "crash"),
    ('m', "machine-crash"),
    ('p', "pause"),
    ('i', "io-errors"),
    ('s', "clock-skew"),
    ('r', "pid-reuse"),
    ('f', "foreign"),
];

impl FaultKinds {
    fn flags(&self) -> [bool; 7] {
        [
            self.crash,
            self.machine_crash,
            self.pause,
            self.io_errors,
            self.clock_skew,
            self.pid_reuse,
            self.foreign,
        ]
    }

    fn from_flags(f: [bool; 7]) -> FaultKinds {
        FaultKinds {
            crash: f[0],
            machine_crash: f[1],
            pause: f[2],
            io_errors: f[3],
            clock_skew: f[4],
            pid_reuse: f[5],
            foreign: f[6],
        }
    }

    /// `cmpisr`-style letters of the enabled kinds (`-` for none).
    pub fn letters(&self) -> String {
        let s: String = LETTERS
            .iter()
            .zip(self.flags())
            .filter(|(_, on)| *on)
            .map(|((c, _), _)| *c)
            .collect();
        if s.is_empty() { "-".into() } else { s }
    }

    pub fn from_letters(s: &str) -> Option<FaultKinds> {
        let mut flags = [false; 7];
        for ch in s.chars().filter(|&c| c != '-') {
            let i = LETTERS.iter().position(|(c, _)| *c == ch)?;
            flags[i] = true;
        }
        Some(FaultKinds::from_flags(flags))
    }

    /// Parses `crash,pause,...` (names as in [`FaultKinds::names`]), `all`
    /// or `none`.
    pub fn from_names(list: &str) -> Result<FaultKinds, String> {
        match list {
            "all" => return Ok(FaultKinds::ALL),
            "none" => return Ok(FaultKinds::NONE),
            _ => {}
        }
        let mut flags = [false; 7];
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let i = LETTERS
                .iter()
                .position(|(_, n)| *n == name)
                .ok_or_else(|| format!("unknown fault kind {name:?} (known: {})", Self::names()))?;
            flags[i] = true;
        }
        Ok(FaultKinds::from_flags(flags))
    }

    pub fn names() -> String {
        LETTERS.map(|(_, n)| n).join(", ")
    }
}

/// A fault striking one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The calling process dies (SIGKILL): its descriptors close, its
    /// kernel locks are released, its files stay.
    Crash,
    /// Power loss: every process dies, unsynced data may be lost or torn.
    MachineCrash,
    /// The process stops for this long (laptop lid, SIGSTOP, GC).
    Pause { ns: u64 },
    /// The call fails with this errno.
    Io { errno: i32 },
    /// Another tool removes the first foreign target (placed only).
    Foreign,
}

/// The kind of the one fault exploration places at a chosen step (see
/// `Config::crash_at`): a replay token writes it as a letter before the
/// step, none for a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placed {
    /// The process making the call dies.
    #[default]
    Crash,
    /// Power loss.
    MachineCrash,
    /// The process making the call stops for the scenario's longest pause
    /// (healing ends it).
    Pause,
    /// Another tool removes the scenario's first foreign target.
    Foreign,
}

impl Placed {
    pub fn letter(self) -> &'static str {
        match self {
            Placed::Crash => "",
            Placed::MachineCrash => "m",
            Placed::Pause => "p",
            Placed::Foreign => "f",
        }
    }

    pub fn from_letter(s: &str) -> Option<Placed> {
        Some(match s {
            "" => Placed::Crash,
            "m" => Placed::MachineCrash,
            "p" => Placed::Pause,
            "f" => Placed::Foreign,
            _ => return None,
        })
    }
}

/// What another tool does to a file baton uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// `rm -f`, `git clean -x`.
    Remove,
    /// A file of its own renamed over the name (an editor, a sync tool).
    Replace,
    /// `: > file`, in place.
    Truncate,
}

impl Foreign {
    pub fn verb(self) -> &'static str {
        match self {
            Foreign::Remove => "rm",
            Foreign::Replace => "replace",
            Foreign::Truncate => "truncate",
        }
    }
}

/// Most foreign acts in one run.
const FOREIGN_BUDGET: u32 = 2;

/// One run's fault rates and active sites, drawn from its seed.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    pub kinds: FaultKinds,
    pub crash_rate: f64,
    pub machine_crash_rate: f64,
    pub pause_rate: f64,
    pub pause_max_ns: u64,
    pub io_error_rate: f64,
    pub pid_reuse_rate: f64,
    /// Wall-clock skew bounds for new processes.
    pub max_offset_ns: i64,
    pub max_drift_ppm: i64,
    pub jump_rate: f64,
    pub max_jump_ns: i64,
    pub active: BTreeSet<Site>,
    /// Faults that may fire in all (a budget, shrunk when minimising).
    pub budget: u32,
    /// Ordinals of faults to suppress (shrinking).
    pub suppressed: BTreeSet<u32>,
    /// A fault placed at this step, whatever the rates say: `placed`'s
    /// kind, a crash by default.
    pub crash_at: Option<u64>,
    pub placed: Placed,
    /// Most a process may be paused in total (see `Scenario::pause_total`).
    pub pause_total_ns: Option<u64>,
    fired: u32,
    drawn: u32,
    rng: Rng,
    /// Chance per call of a foreign act (0 unless `foreign`), and its own
    /// stream, so runs without it draw exactly what they always did.
    foreign_rate: f64,
    foreign_fired: u32,
    foreign_rng: Rng,
}

const SEC: u64 = 1_000_000_000;

impl FaultPlan {
    pub fn draw(seed: u64, kinds: FaultKinds, budget: u32, suppressed: BTreeSet<u32>) -> FaultPlan {
        let mut r = Rng::stream(seed, 0xFA17);
        let mut rate = |on: bool, max: f64| {
            let x = (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if on { x * max } else { 0.0 }
        };
        let crash_rate = rate(kinds.crash, 0.02);
        let machine_crash_rate = rate(kinds.machine_crash, 0.002);
        let pause_rate = rate(kinds.pause, 0.02);
        let io_error_rate = rate(kinds.io_errors, 0.02);
        let pid_reuse_rate = rate(kinds.pid_reuse, 1.0);
        let jump_rate = rate(kinds.clock_skew, 0.5);
        let mut r = Rng::stream(seed, 0x517E);
        let active = Site::ALL.into_iter().filter(|_| r.chance(0.5)).collect();
        let skew = kinds.clock_skew;
        FaultPlan {
            kinds,
            crash_rate,
            machine_crash_rate,
            pause_rate,
            pause_max_ns: 120 * SEC,
            io_error_rate,
            pid_reuse_rate,
            max_offset_ns: if skew {
                r.range(0, 3_600) * SEC as i64
            } else {
                0
            },
            max_drift_ppm: if skew { r.range(0, 500) } else { 0 },
            jump_rate,
            max_jump_ns: if skew { 600 * SEC as i64 } else { 0 },
            active,
            budget,
            suppressed,
            crash_at: None,
            placed: Placed::Crash,
            pause_total_ns: None,
            fired: 0,
            drawn: 0,
            rng: Rng::stream(seed, 0xD1CE),
            foreign_rate: if kinds.foreign {
                Rng::stream(seed, 0xF0E1).unit() * 0.01
            } else {
                0.0
            },
            foreign_fired: 0,
            foreign_rng: Rng::stream(seed, 0xF0E2),
        }
    }

    /// Whether another tool acts now, and on which of `targets` targets.
    pub fn foreign_strike(&mut self, targets: usize) -> Option<(usize, Foreign)> {
        if self.foreign_rate == 0.0 || targets == 0 || self.foreign_fired >= FOREIGN_BUDGET {
            return None;
        }
        if self.foreign_rng.unit() >= self.foreign_rate {
            return None;
        }
        self.foreign_fired += 1;
        let target = self.foreign_rng.below(targets as u64) as usize;
        let act = [Foreign::Remove, Foreign::Replace, Foreign::Truncate]
            [self.foreign_rng.below(3) as usize];
        Some((target, act))
    }

    /// Faults that fired so far.
    pub fn fired(&self) -> u32 {
        self.fired
    }

    /// Decides the fault (if any) for one call at `site`, the `step`th
    /// call of the run. Always consumes the same randomness, fault or not.
    pub fn strike(&mut self, site: Site, step: u64) -> Option<Fault> {
        let roll = self.rng.next_u64();
        let pick = self.rng.next_u64();
        if self.crash_at == Some(step) {
            self.fired += 1;
            return Some(match self.placed {
                Placed::Crash => Fault::Crash,
                Placed::MachineCrash => Fault::MachineCrash,
                Placed::Pause => Fault::Pause {
                    ns: self.pause_max_ns,
                },
                Placed::Foreign => Fault::Foreign,
            });
        }
        if !self.active.contains(&site) || self.fired >= self.budget {
            return None;
        }
        let u = (roll >> 11) as f64 / (1u64 << 53) as f64;
        let mut edge = 0.0;
        let mut hit = |rate: f64| {
            edge += rate;
            u < edge
        };
        let fault = if hit(self.machine_crash_rate) {
            Fault::MachineCrash
        } else if hit(self.crash_rate) {
            Fault::Crash
        } else if hit(self.pause_rate) {
            // 1 s to 1 s + max by default; a bound under 2 s (a scenario's
            // pause assumption) gives pauses between max/2 and max.
            Fault::Pause {
                ns: if self.pause_max_ns >= 2 * SEC {
                    SEC + pick % self.pause_max_ns
                } else {
                    self.pause_max_ns / 2 + pick % (self.pause_max_ns / 2).max(1)
                },
            }
        } else if !site.io_errors().is_empty() && hit(self.io_error_rate) {
            let errs = site.io_errors();
            Fault::Io {
                errno: errs[(pick % errs.len() as u64) as usize],
            }
        } else {
            return None;
        };
        let ordinal = self.drawn;
        self.drawn += 1;
        if self.suppressed.contains(&ordinal) {
            return None;
        }
        self.fired += 1;
        Some(fault)
    }

    /// Ordinals of every fault that struck or was suppressed so far.
    pub fn ordinals(&self) -> u32 {
        self.drawn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_kinds_round_trip_through_letters_and_names() {
        for kinds in [FaultKinds::ALL, FaultKinds::NONE] {
            assert_eq!(FaultKinds::from_letters(&kinds.letters()), Some(kinds));
        }
        let some = FaultKinds::from_names("crash,clock-skew").unwrap();
        assert!(some.crash && some.clock_skew && !some.pause);
        assert_eq!(some.letters(), "cs");
        assert!(FaultKinds::from_names("crash,lightning").is_err());
        assert_eq!(FaultKinds::from_letters("x"), None);
    }

    #[test]
    fn no_kinds_no_faults() {
        let mut p = FaultPlan::draw(5, FaultKinds::NONE, 100, BTreeSet::new());
        assert!((0..10_000).all(|i| p.strike(Site::ALL[i % Site::ALL.len()], i as u64).is_none()));
    }

    #[test]
    fn suppressing_a_fault_leaves_the_others_in_place() {
        let run = |suppressed: BTreeSet<u32>| {
            let mut p = FaultPlan::draw(11, FaultKinds::ALL, 1_000, suppressed);
            (0..20_000)
                .map(|i| {
                    p.strike(Site::ALL[i % Site::ALL.len()], i as u64)
                        .map(|f| (i, f))
                })
                .collect::<Vec<_>>()
        };
        let all = run(BTreeSet::new());
        let without_first = run(BTreeSet::from([0]));
        let fired: Vec<_> = all.iter().flatten().collect();
        assert!(fired.len() > 2, "seed 11 draws faults");
        let rest: Vec<_> = without_first.iter().flatten().collect();
        assert_eq!(&fired[1..], &rest[..]);
    }

    #[test]
    fn budget_caps_the_faults() {
        let mut p = FaultPlan::draw(11, FaultKinds::ALL, 2, BTreeSet::new());
        let n = (0..20_000)
            .filter(|&i| p.strike(Site::ALL[i % Site::ALL.len()], i as u64).is_some())
            .count();
        assert_eq!(n, 2);
    }
}
