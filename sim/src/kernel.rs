//! The simulated kernel: processes, virtual time, the scheduler hand-off,
//! faults and the trace, around the simulated filesystem.
//!
//! Each simulated process runs as a stackful coroutine on the thread that
//! runs the scenario, and only one runs at a time: the one the kernel names
//! `current`. Every environment call is a scheduling point. The caller asks
//! the strategy which runnable process goes next and, if it is another one,
//! suspends itself back to the run loop, which resumes that one. So a run is
//! a pure function of its seed and configuration, and a hand-off is a user
//! space stack switch of a few nanoseconds, not a futex wake-up and sleep
//! between OS threads (which was 97 % of the simulator's system time when
//! each process had its own thread). The production code stays synchronous
//! and unchanged: it cannot tell it is suspended inside an `Fs` call.
//!
//! A coroutine never suspends while it unwinds: the panic count is per OS
//! thread, so another process starting to unwind meanwhile would look like a
//! panic inside a panic and abort. Calls made by destructors during an
//! unwind therefore fail at once without a scheduling point (see
//! `Caller::enter`).
//!
//! Virtual time advances by a fixed cost per call, and jumps forward only
//! when no process is runnable (all asleep, paused or blocked on a
//! `flock`): a run of simulated minutes takes milliseconds.
//!
//! A crash marks the process dead *before* its thread unwinds, so `Drop`
//! guards in production code run against a dead process: their calls fail
//! and change nothing, as for a process killed by SIGKILL, which runs no
//! destructor at all.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use baton_core::catalogue::Invariant;
use corosensei::Yielder;

use crate::clock::ClockModel;
use crate::fault::FaultPlan;
use crate::fs::{CrashFate, Ino, SimFs};
use crate::oracle::{Finding, Oracle, Violation};
use crate::rng::Rng;
use crate::strategy::{Guided, Strategy};

/// Virtual cost of one environment call.
pub const CALL_NS: u64 = 20_000;
/// Most a sleeping process wakes late (timer slack, run-queue delay).
pub const MAX_WAKE_LATENCY_NS: u64 = 2_000_000;
const SEC: u64 = 1_000_000_000;

/// One traced step: what process `slot` did at true time `at_ns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at_ns: u64,
    /// The process, or `None` for the world (another tool acting).
    pub slot: Option<usize>,
    /// As in the trace line: `<call> -> <result>`, `CRASH in <call>`,
    /// `ENTER <resource>`, ...
    pub what: String,
}

/// Why a process thread unwinds.
#[derive(Debug)]
pub(crate) enum Unwind {
    /// The process was killed (crash fault or machine crash).
    Crashed,
    /// The run ended early (a violation was found).
    Aborted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PState {
    Runnable,
    Sleeping {
        until: u64,
    },
    Paused {
        until: u64,
    },
    /// Waiting in `flock` for `ino`, until the deadline if any.
    Blocked {
        ino: Ino,
        until: Option<u64>,
    },
    /// Killed; its thread must unwind when next scheduled.
    Dying,
    Done,
    /// Its thread has exited without finishing (aborted run, or too many
    /// restarts).
    Gone,
}

#[derive(Clone, Debug)]
pub(crate) struct Proc {
    pub pid: u32,
    pub start_time: u64,
    pub incarnation: u32,
    pub restarts: u32,
    pub state: PState,
    pub clock: ClockModel,
    /// Time this slot's processes have spent paused.
    pub paused_ns: u64,
    /// I/O errors injected into this slot's calls so far (see
    /// `Probe::error_seen`).
    pub injected: u32,
}

/// Limits of one run.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Faults strike only before this true time; then the world heals.
    pub fault_phase_ns: u64,
    /// After healing, every process must finish within this.
    pub liveness_bound_ns: u64,
    pub max_steps: u64,
    pub max_restarts: u32,
}

pub(crate) struct Kernel {
    pub fs: SimFs,
    pub procs: Vec<Proc>,
    pub now: u64,
    pub step: u64,
    pub current: Option<usize>,
    pub strategy: Strategy,
    pub faults: FaultPlan,
    pub oracle: Oracle,
    pub violation: Option<Violation>,
    pub aborted: bool,
    pub finished: bool,
    pub limits: Limits,
    /// Files another tool may act on, each with the resource whose lock it
    /// is (see `FaultKinds::foreign`).
    pub foreign_targets: Vec<(std::path::PathBuf, String)>,
    /// Inodes another tool made: baton must never write, rename or remove
    /// them.
    pub foreign_inodes: std::collections::BTreeSet<Ino>,
    /// Lock files another tool removed or replaced, with their resource
    /// and who held their kernel lock then.
    gone_inodes: std::collections::BTreeMap<Ino, (String, std::collections::BTreeSet<usize>)>,
    foreign_healed: bool,
    /// The call each process waiting for its turn is about to make.
    pub pending: Vec<Option<crate::fault::Site>>,
    pub trace: Option<Vec<String>>,
    /// The trace's steps as data, when tracing (for diagrams).
    pub events: Vec<Event>,
    hash: DefaultHasher,
    /// Randomness the processes see (tokens, jitter, read_dir order).
    pub rng: Rng,
    /// Randomness of the world itself (pids, clocks, crash fates).
    world_rng: Rng,
    pub boot: u32,
    /// Coverage marks: how often each rare path ran (faults by kind, and
    /// what scenarios mark through their probe).
    pub marks: std::collections::BTreeMap<String, u64>,
    next_pid: u32,
    next_tick: u64,
    dead_pids: Vec<u32>,
}

impl Kernel {
    pub fn new(
        fs: SimFs,
        procs: usize,
        seed: u64,
        strategy: Strategy,
        faults: FaultPlan,
        limits: Limits,
        trace: bool,
    ) -> Kernel {
        let mut k = Kernel {
            fs,
            procs: Vec::new(),
            now: 0,
            step: 0,
            current: None,
            strategy,
            faults,
            oracle: Oracle::default(),
            violation: None,
            aborted: false,
            finished: false,
            limits,
            foreign_targets: Vec::new(),
            foreign_inodes: std::collections::BTreeSet::new(),
            gone_inodes: std::collections::BTreeMap::new(),
            foreign_healed: false,
            pending: vec![None; procs],
            trace: trace.then(Vec::new),
            events: Vec::new(),
            hash: DefaultHasher::new(),
            rng: Rng::stream(seed, 0xE4F),
            world_rng: Rng::stream(seed, 0x1D),
            boot: 0,
            marks: std::collections::BTreeMap::new(),
            next_pid: 100,
            next_tick: 1_000,
            dead_pids: Vec::new(),
        };
        for slot in 0..procs {
            let (pid, start_time, mut clock) = k.new_process_identity();
            clock.offset_ns += k.host_offset_ns(slot);
            k.procs.push(Proc {
                pid,
                start_time,
                incarnation: 0,
                restarts: 0,
                state: PState::Runnable,
                clock,
                paused_ns: 0,
                injected: 0,
            });
        }
        k
    }

    pub fn boot_id(&self) -> String {
        format!("sim-boot-{}", self.boot)
    }

    /// The host `slot` runs on, and its boot, as its identity names them.
    pub fn host_and_boot(&self, slot: usize) -> (String, String) {
        match self.fs.host_of(slot) {
            0 => ("sim".into(), self.boot_id()),
            _ => ("sim-b".into(), format!("sim-b-boot-{}", self.boot)),
        }
    }

    /// How far `slot`'s host's clock is from this one's.
    fn host_offset_ns(&self, slot: usize) -> i64 {
        match (&self.fs.remote, self.fs.host_of(slot)) {
            (Some(r), 1) => r.clock_offset_ns,
            _ => 0,
        }
    }

    fn new_process_identity(&mut self) -> (u32, u64, ClockModel) {
        let reuse = !self.dead_pids.is_empty() && self.world_rng.chance(self.faults.pid_reuse_rate);
        let pid = if reuse {
            self.mark("pid-reuse");
            let i = self.world_rng.below(self.dead_pids.len() as u64) as usize;
            self.dead_pids.swap_remove(i)
        } else {
            self.next_pid += 1 + self.world_rng.below(3) as u32;
            self.next_pid
        };
        self.next_tick += 1 + self.now / (SEC / 100);
        let plan = &self.faults;
        let r = &mut self.world_rng;
        let mut clock = ClockModel {
            offset_ns: r.range(-plan.max_offset_ns, plan.max_offset_ns),
            drift_ppm: r.range(-plan.max_drift_ppm, plan.max_drift_ppm),
            started_ns: self.now,
            mono_base_ns: r.below(1 << 40),
            ..ClockModel::default()
        };
        if plan.max_offset_ns > 0 && r.chance(0.5) {
            clock.wobble_ns = r.range(0, plan.max_offset_ns / 100);
            clock.wobble_period_ns = SEC * (1 + r.below(60));
        }
        let jumps = r.chance(plan.jump_rate);
        if jumps {
            let at = self.now + r.below(self.limits.fault_phase_ns.max(1));
            let size = r.range(-plan.max_jump_ns, plan.max_jump_ns);
            clock.jumps.push((at, size));
            self.mark("clock-jump");
        }
        if clock.offset_ns != 0 || clock.drift_ppm != 0 {
            self.mark("clock-skew");
        }
        (pid, self.next_tick, clock)
    }

    /// How late a sleeping process wakes: up to [`MAX_WAKE_LATENCY_NS`].
    pub fn wake_latency(&mut self) -> u64 {
        self.world_rng.below(MAX_WAKE_LATENCY_NS + 1)
    }

    pub fn mark(&mut self, name: &str) {
        *self.marks.entry(name.to_owned()).or_default() += 1;
    }

    /// Whether a process (this incarnation of a slot) is gone.
    pub fn is_dead(&self, slot: usize, incarnation: u32) -> bool {
        let p = &self.procs[slot];
        p.incarnation != incarnation || matches!(p.state, PState::Dying | PState::Gone)
    }

    pub fn in_fault_phase(&self) -> bool {
        self.now < self.limits.fault_phase_ns
    }

    // ----- trace ------------------------------------------------------------

    /// Records one step: `t=<true> p<N> (clock <local>) <what>`.
    pub fn record(&mut self, slot: usize, what: impl FnOnce() -> String) {
        self.step += 1;
        if let Some(trace) = &mut self.trace {
            let wall = self.procs[slot].clock.wall_ns(self.now);
            let what = what();
            let line = format!(
                "t={} p{} (clock {}) {}",
                secs(self.now as i64),
                slot,
                secs(wall),
                what
            );
            line.hash(&mut self.hash);
            trace.push(line);
            self.events.push(Event {
                at_ns: self.now,
                slot: Some(slot),
                what,
            });
        } else {
            (slot, self.now).hash(&mut self.hash);
        }
    }

    /// Records a step of the world itself: `t=<true> world <what>`.
    pub fn record_world(&mut self, what: String) {
        self.step += 1;
        if let Some(trace) = &mut self.trace {
            let line = format!("t={} world {what}", secs(self.now as i64));
            line.hash(&mut self.hash);
            trace.push(line);
            self.events.push(Event {
                at_ns: self.now,
                slot: None,
                what,
            });
        } else {
            (usize::MAX, self.now).hash(&mut self.hash);
        }
    }

    pub fn trace_hash(&self) -> u64 {
        self.hash.finish()
    }

    // ----- faults and death -------------------------------------------------

    /// Records a violation (the first one wins) and ends the run.
    pub fn violate(&mut self, finding: Finding, detail: String) {
        if self.violation.is_none() {
            if let Some(trace) = &mut self.trace {
                trace.push(format!("VIOLATION {finding}: {detail}"));
            }
            self.violation = Some(Violation {
                finding,
                detail,
                step: self.step,
                at_ns: self.now,
            });
        }
        self.abort();
    }

    fn abort(&mut self) {
        self.aborted = true;
        for p in &mut self.procs {
            if !matches!(p.state, PState::Done | PState::Gone) {
                p.state = PState::Dying;
            }
        }
    }

    pub fn wake_lock_waiters(&mut self, freed: &[Ino]) {
        for p in &mut self.procs {
            if let PState::Blocked { ino, .. } = p.state
                && freed.contains(&ino)
            {
                p.state = PState::Runnable;
            }
        }
    }

    /// SIGKILL: descriptors close (kernel locks released), files stay.
    pub fn kill(&mut self, slot: usize) {
        self.mark("crash");
        let freed = self.fs.close_all_of(slot);
        self.wake_lock_waiters(&freed);
        self.oracle.died(slot);
        self.dead_pids.push(self.procs[slot].pid);
        self.procs[slot].state = PState::Dying;
    }

    /// Power loss: every process dies; unsynced data may be lost or torn.
    pub fn machine_crash(&mut self) {
        self.mark("machine-crash");
        for slot in 0..self.procs.len() {
            if !matches!(self.procs[slot].state, PState::Done | PState::Gone) {
                self.oracle.died(slot);
                self.procs[slot].state = PState::Dying;
            }
        }
        let r = &mut self.world_rng;
        self.fs.crash(|_, len| {
            let fate = match r.below(4) {
                0 => CrashFate::Durable,
                1 => CrashFate::Visible,
                2 => CrashFate::Torn,
                _ => CrashFate::Empty,
            };
            (fate, r.below(len as u64 + 1) as usize)
        });
        // Another tool's unsynced file may be lost with the rest: by the
        // crash, not by baton.
        let fs = &self.fs;
        self.foreign_inodes.retain(|&ino| fs.nlink(ino) > 0);
        self.boot += 1;
        // A new boot numbers its processes afresh: pids repeat.
        self.next_pid = 100;
        self.dead_pids.clear();
    }

    /// Another tool acts on foreign target `target`. A removal or
    /// replacement of a held lock's file robs its holders of exclusion;
    /// every process may now meet errors no fault injected into its own
    /// calls (a foreign file where its lock was), so each is told.
    pub fn foreign(&mut self, target: usize, act: crate::fault::Foreign) {
        use crate::fault::Foreign;
        let (path, resource) = self.foreign_targets[target].clone();
        let now = crate::clock::epoch() + std::time::Duration::from_nanos(self.now);
        // Whoever holds the lock through the file about to go (a waiter
        // holding its kernel lock a moment to inspect it holds nothing).
        let acquirers = self.oracle.acquirers(&resource);
        let gone = self.fs.inode_of(&path);
        let lockers = gone.map(|ino| self.kernel_lockers(ino)).unwrap_or_default();
        let holders: Vec<usize> = lockers
            .iter()
            .copied()
            .filter(|s| acquirers.contains(s))
            .collect();
        let done = match act {
            Foreign::Remove => {
                // The tool removing its own file: gone by its own hand.
                // Durably, like the tool's writes (a crash must not bring
                // back what the tool removed).
                if let Some(ino) = self.fs.inode_of(&path) {
                    self.foreign_inodes.remove(&ino);
                }
                let parent = path.parent().unwrap_or(std::path::Path::new("/"));
                self.fs.remove_file(&path).is_ok() && self.fs.sync_dir(parent).is_ok()
            }
            Foreign::Replace => {
                if let Some(ino) = self.fs.inode_of(&path) {
                    self.foreign_inodes.remove(&ino);
                }
                // Written durably, as a careful tool does: a machine crash
                // must not turn it into something else (an empty file is
                // baton's by design, see `record::written_by_baton`).
                let tmp = path.with_extension("foreign-tmp");
                let parent = path.parent().unwrap_or(std::path::Path::new("/"));
                self.fs.put(&tmp, b"not baton's\n", now).is_ok()
                    && self
                        .fs
                        .open(&tmp, false, usize::MAX, now)
                        .map(|ofd| {
                            self.fs.sync_all(ofd);
                            self.fs.close(ofd);
                        })
                        .is_ok()
                    && self.fs.rename(&tmp, &path).is_ok()
                    && self.fs.sync_dir(parent).is_ok()
                    && self
                        .fs
                        .metadata(&path)
                        .map(|m| self.foreign_inodes.insert(m.id.ino))
                        .is_ok()
            }
            // Only baton's own files: another tool's file emptied is, by
            // design, indistinguishable from baton's record lost to a
            // machine crash, and adopted (see `record::written_by_baton`).
            Foreign::Truncate => {
                self.fs
                    .inode_of(&path)
                    .is_some_and(|ino| !self.foreign_inodes.contains(&ino))
                    && self.fs.truncate(&path, now).is_ok()
            }
        };
        self.record_world(format!(
            "FOREIGN {} {}{}",
            act.verb(),
            path.display(),
            if done { "" } else { " (nothing there)" }
        ));
        self.mark("foreign");
        if done && act != Foreign::Truncate {
            if !holders.is_empty() {
                self.mark("robbed");
            }
            self.oracle.robbed(&resource, holders);
            if let Some(ino) = gone {
                self.gone_inodes
                    .insert(ino, (resource, lockers.into_iter().collect()));
            }
        }
        self.world_changed();
    }

    /// The processes holding inode `ino`'s kernel lock.
    pub fn kernel_lockers(&self, ino: Ino) -> Vec<usize> {
        let mut ofds = self.fs.shared_holders(ino);
        ofds.extend(self.fs.lock_holder(ino));
        ofds.into_iter().map(|o| self.fs.ofd(o).owner).collect()
    }

    /// `slot` acquired `resource`'s lock: robbed already if it holds the
    /// kernel lock of a file another tool took away (on its way out of
    /// `acquire`, after its last check).
    pub fn acquired(&mut self, slot: usize, resource: &str) {
        let robbed = self
            .gone_inodes
            .iter()
            .filter(|(_, (r, _))| r == resource)
            .any(|(&ino, (_, then))| {
                // Held since before the file went: a kernel lock taken
                // on it afterwards should have been noticed by acquire's
                // own check that the name still points at it.
                then.contains(&slot) && self.kernel_lockers(ino).contains(&slot)
            });
        if robbed {
            self.record(slot, || {
                format!("ROBBED {resource} already: its lock file is gone")
            });
        }
        self.oracle.acquired(slot, resource, robbed);
    }

    /// Something outside the processes changed their files: errors any of
    /// them meets from now on may come from it (see `Probe::error_seen`).
    fn world_changed(&mut self) {
        for p in &mut self.procs {
            p.injected += 1;
        }
    }

    /// Whether another tool's file sits at one of baton's names now
    /// (every baton process must refuse it until a person removes it).
    pub fn foreign_file_present(&self) -> bool {
        self.foreign_targets.iter().any(|(path, _)| {
            self.fs
                .inode_of(path)
                .is_some_and(|ino| self.foreign_inodes.contains(&ino))
        })
    }

    /// Whether `ino` is another tool's: touching it is a violation.
    pub fn check_foreign(&mut self, slot: usize, ino: Ino, what: &str) {
        if self.foreign_inodes.contains(&ino) {
            self.violate(
                Finding::ForeignTouched,
                format!("p{slot} {what}: a file another tool made, which baton must not touch"),
            );
        }
    }

    /// Healing: a person removes what another tool left at baton's names,
    /// after checking that baton lost none of it (moved aside and not put
    /// back, or renamed over).
    pub fn heal_foreign(&mut self, check: bool) {
        let lost: Vec<Ino> = self
            .foreign_inodes
            .iter()
            .copied()
            .filter(|&ino| self.fs.nlink(ino) == 0)
            .collect();
        if let Some(ino) = lost.first().filter(|_| check) {
            self.violate(
                Finding::ForeignTouched,
                format!("another tool's file (inode {ino}) is gone, and not by its own hand"),
            );
        }
        for (path, _) in self.foreign_targets.clone() {
            if let Ok(m) = self.fs.metadata(&path)
                && self.foreign_inodes.contains(&m.id.ino)
                && self.fs.remove_file(&path).is_ok()
            {
                // Gone by a person's hand now, whatever names it has left.
                self.foreign_inodes.remove(&m.id.ino);
                self.record_world(format!("HEAL rm {}", path.display()));
                self.world_changed();
            }
        }
    }

    /// Gives a killed slot a new process (new pid, perhaps a reused one).
    /// False when it has restarted too often or the run is over.
    pub fn restart(&mut self, slot: usize) -> bool {
        if self.aborted || self.procs[slot].restarts >= self.limits.max_restarts {
            self.procs[slot].state = PState::Gone;
            return false;
        }
        let (pid, start_time, mut clock) = self.new_process_identity();
        clock.offset_ns += self.host_offset_ns(slot);
        let delay = self.world_rng.below(2 * SEC);
        let p = &mut self.procs[slot];
        p.pid = pid;
        p.start_time = start_time;
        p.clock = clock;
        p.incarnation += 1;
        p.restarts += 1;
        p.state = PState::Sleeping {
            until: self.now + delay,
        };
        true
    }

    /// The live process with `pid`, if any.
    /// The live process with `pid` on host `host` (a pid names a process
    /// on one host only).
    pub fn live_pid_on(&self, host: u8, pid: u32) -> Option<&Proc> {
        self.procs.iter().enumerate().find_map(|(slot, p)| {
            let live = p.pid == pid
                && self.fs.host_of(slot) == host
                && !matches!(p.state, PState::Dying | PState::Gone | PState::Done);
            live.then_some(p)
        })
    }

    // ----- scheduling -------------------------------------------------------

    fn check_limits(&mut self) {
        if self.violation.is_some() {
            return;
        }
        let deadline = self.limits.fault_phase_ns + self.limits.liveness_bound_ns;
        let unfinished = || {
            self.procs
                .iter()
                .enumerate()
                .filter(|(_, p)| !matches!(p.state, PState::Done | PState::Gone))
                .map(|(i, _)| format!("p{i}"))
                .collect::<Vec<_>>()
        };
        if self.now > deadline {
            let late = unfinished();
            if !late.is_empty() {
                self.violate(
                    Finding::Invariant(Invariant::Liveness),
                    format!(
                        "{} not done {}s after faults stopped",
                        late.join(", "),
                        self.limits.liveness_bound_ns / SEC
                    ),
                );
            }
        } else if self.step > self.limits.max_steps {
            let late = unfinished();
            self.violate(
                Finding::Invariant(Invariant::Liveness),
                format!(
                    "{} still running after {} steps",
                    late.join(", "),
                    self.limits.max_steps
                ),
            );
        }
    }

    /// Picks the process to run next, advancing virtual time while nobody
    /// can run. `None` when every process has finished.
    pub fn schedule(&mut self, last: Option<usize>) -> Option<usize> {
        loop {
            self.check_limits();
            let now = self.now;
            let healed = !self.in_fault_phase();
            if healed && !self.foreign_targets.is_empty() {
                // Once healed, a person removes whatever of another tool's
                // shows up at baton's names (put back late by a paused
                // release, say), checking once that nothing of it was lost.
                self.heal_foreign(!self.foreign_healed);
                self.foreign_healed = true;
            }
            for p in &mut self.procs {
                p.state = match p.state {
                    PState::Sleeping { until } if until <= now => PState::Runnable,
                    // Healing resumes paused processes.
                    PState::Paused { until } if until <= now || healed => PState::Runnable,
                    PState::Blocked { until: Some(u), .. } if u <= now => PState::Runnable,
                    s => s,
                };
            }
            if let Some(dying) = self.procs.iter().position(|p| p.state == PState::Dying) {
                return Some(dying);
            }
            let runnable: Vec<usize> = (0..self.procs.len())
                .filter(|&i| self.procs[i].state == PState::Runnable)
                .collect();
            let guided = if runnable.is_empty() {
                Guided::Wait
            } else {
                self.strategy.follow(&runnable, &self.pending)
            };
            let someone_wakes = self.procs.iter().any(|p| {
                matches!(
                    p.state,
                    PState::Sleeping { .. }
                        | PState::Paused { .. }
                        | PState::Blocked { until: Some(_), .. }
                )
            });
            match guided {
                Guided::Run(p) => return Some(p),
                Guided::Wait if runnable.is_empty() || someone_wakes => {}
                Guided::Wait | Guided::Off => {
                    let last = last.filter(|l| runnable.contains(l));
                    return Some(self.strategy.pick(&runnable, last, self.step));
                }
            }
            let wake = self
                .procs
                .iter()
                .filter_map(|p| match p.state {
                    PState::Sleeping { until } | PState::Paused { until } => Some(until),
                    PState::Blocked { until, .. } => until,
                    _ => None,
                })
                .min();
            match wake {
                Some(t) => {
                    // Pauses end at healing time at the latest.
                    let heal = self.limits.fault_phase_ns;
                    let t = if self.now < heal { t.min(heal) } else { t };
                    self.now = self.now.max(t);
                }
                None if self
                    .procs
                    .iter()
                    .all(|p| matches!(p.state, PState::Done | PState::Gone)) =>
                {
                    return None;
                }
                None => {
                    let stuck: Vec<_> = (0..self.procs.len())
                        .filter(|&i| matches!(self.procs[i].state, PState::Blocked { .. }))
                        .map(|i| format!("p{i}"))
                        .collect();
                    self.violate(
                        Finding::Invariant(Invariant::Liveness),
                        format!("deadlock: {} blocked forever", stuck.join(", ")),
                    );
                }
            }
        }
    }
}

/// `12.345678s`, signed.
pub(crate) fn secs(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    format!("{sign}{}.{:06}s", ns / SEC, (ns % SEC) / 1_000)
}

/// How a simulated process gives the CPU back to the run loop: its
/// coroutine's yielder.
pub(crate) type Yield = Yielder<(), ()>;

/// The kernel, shared by the run loop and the process coroutines. The
/// mutex is never contended (one OS thread); it keeps the kernel `Sync` so
/// the simulator's types stay what they were when processes were threads.
pub(crate) struct Shared {
    kernel: Mutex<Kernel>,
}

pub(crate) type Guard<'a> = MutexGuard<'a, Kernel>;

impl Shared {
    pub fn new(kernel: Kernel) -> Shared {
        Shared {
            kernel: Mutex::new(kernel),
        }
    }

    pub fn lock(&self) -> Guard<'_> {
        // A panicking process is caught and reported; the kernel's state
        // stays consistent because every mutation completes under the lock
        // before any code that can panic runs.
        self.kernel.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn into_kernel(self) -> Kernel {
        self.kernel.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Names whoever the kernel schedules next as `current`. `me` (its slot
    /// and yielder), if another process is next, suspends to the run loop
    /// until its turn comes back; without `me` (a process that has ended,
    /// or the run loop starting the run) the caller returns at once and
    /// the run loop resumes `current`.
    pub fn switch<'a>(&'a self, mut k: Guard<'a>, me: Option<(usize, &Yield)>) -> Guard<'a> {
        match k.schedule(me.map(|(slot, _)| slot)) {
            Some(next) => {
                k.current = Some(next);
                if let Some((slot, yielder)) = me
                    && next != slot
                {
                    assert!(
                        !std::thread::panicking(),
                        "p{slot} would suspend while unwinding"
                    );
                    drop(k);
                    yielder.suspend(());
                    k = self.lock();
                    assert_eq!(k.current, Some(slot), "resumed out of turn");
                }
            }
            None => {
                k.current = None;
                k.finished = true;
            }
        }
        k
    }
}
