//! The oracle: checks DESIGN.md's invariants as the run goes, from what
//! processes report through their [`crate::Probe`] and what the simulated
//! kernel knows (who is alive), never from reading logs afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use baton_core::catalogue::Invariant;

/// What broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    Invariant(Invariant),
    /// A panic in production or scenario code: an assertion failed.
    Panic,
    /// A call failed although no fault was injected into any call of the
    /// process since it began: production code made up an error (or
    /// mistook a normal outcome for one).
    UnexpectedError,
    /// baton wrote, renamed or removed a file another tool made.
    ForeignTouched,
    /// baton told its caller something that did not happen, or kept
    /// quiet about something it promises to report: a lock removed by
    /// another tool released as if nothing had happened, a reaped lock's
    /// holder not reported dead.
    Misreported,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Invariant(i) => i.fmt(f),
            Finding::Panic => f.write_str("panic"),
            Finding::UnexpectedError => f.write_str("unexpected-error"),
            Finding::ForeignTouched => f.write_str("foreign-file-touched"),
            Finding::Misreported => f.write_str("misreported"),
        }
    }
}

/// The first invariant a run broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub finding: Finding,
    pub detail: String,
    /// Step (environment call) at which it was detected.
    pub step: u64,
    /// True time, ns.
    pub at_ns: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Oracle {
    /// Live processes (slots) inside each resource's critical section.
    holders: BTreeMap<String, BTreeSet<usize>>,
    /// Live processes inside as readers (shared locks): any number, but
    /// never beside a holder.
    readers: BTreeMap<String, BTreeSet<usize>>,
    /// Acknowledged updates per key: the value that must survive.
    acked: BTreeMap<String, u64>,
    /// Primaries acting, per election: slot and epoch.
    primaries: BTreeMap<String, BTreeMap<usize, u64>>,
    /// Live claimants of each path.
    claims: BTreeMap<String, BTreeSet<usize>>,
    /// Processes holding each resource's lock, from acquisition to release
    /// (told by scenarios that let another tool act on lock files).
    acquired: BTreeMap<String, BTreeSet<usize>>,
    /// Holders whose lock file another tool removed or replaced while
    /// they held it, per resource: others may enter beside them, and
    /// their release must say the lock was lost.
    robbed: BTreeMap<String, BTreeSet<usize>>,
}

impl Oracle {
    /// `slot` entered the critical section of `resource`.
    pub fn enter(&mut self, slot: usize, resource: &str) -> Result<(), (Invariant, String)> {
        let reading = self
            .readers
            .get(resource)
            .and_then(|r| r.iter().find(|&&s| s != slot).copied());
        let robbed = self.robbed.get(resource).cloned().unwrap_or_default();
        let inside = self.holders.entry(resource.to_owned()).or_default();
        // Beside a holder whose lock file another tool took away, nobody
        // is excluded: no overlap involving one is a violation.
        let others: Vec<_> = inside
            .iter()
            .filter(|&&s| s != slot && !robbed.contains(&s) && !robbed.contains(&slot))
            .copied()
            .collect();
        inside.insert(slot);
        if let Some(other) = others.first() {
            return Err((
                Invariant::MutualExclusion,
                format!("p{slot} entered {resource} while p{other} is inside"),
            ));
        }
        if let Some(reader) = reading {
            return Err((
                Invariant::MutualExclusion,
                format!("p{slot} entered {resource} while p{reader} reads it"),
            ));
        }
        Ok(())
    }

    /// `slot` entered `resource` as a reader.
    pub fn enter_shared(&mut self, slot: usize, resource: &str) -> Result<(), (Invariant, String)> {
        self.readers
            .entry(resource.to_owned())
            .or_default()
            .insert(slot);
        let writer = self
            .holders
            .get(resource)
            .and_then(|h| h.iter().find(|&&s| s != slot).copied());
        match writer {
            Some(w) => Err((
                Invariant::MutualExclusion,
                format!("p{slot} began reading {resource} while p{w} holds it"),
            )),
            None => Ok(()),
        }
    }

    pub fn exit_shared(&mut self, slot: usize, resource: &str) {
        if let Some(inside) = self.readers.get_mut(resource) {
            inside.remove(&slot);
        }
    }

    pub fn exit(&mut self, slot: usize, resource: &str) {
        if let Some(inside) = self.holders.get_mut(resource) {
            inside.remove(&slot);
        }
    }

    /// `slot` acquired `resource`'s lock; `robbed` if its lock file was
    /// already taken away by another tool on the way out of `acquire`.
    pub fn acquired(&mut self, slot: usize, resource: &str, robbed: bool) {
        self.acquired
            .entry(resource.to_owned())
            .or_default()
            .insert(slot);
        if robbed {
            self.robbed
                .entry(resource.to_owned())
                .or_default()
                .insert(slot);
        }
    }

    /// Who holds `resource`'s lock now.
    pub fn acquirers(&self, resource: &str) -> BTreeSet<usize> {
        self.acquired.get(resource).cloned().unwrap_or_default()
    }

    /// Another tool removed or replaced `resource`'s lock file while
    /// `holders` held it: they now hold nothing that excludes.
    pub fn robbed(&mut self, resource: &str, holders: impl IntoIterator<Item = usize>) {
        self.robbed
            .entry(resource.to_owned())
            .or_default()
            .extend(holders);
    }

    /// `slot` released `resource`'s lock; `lost` is whether the release
    /// said it was no longer its own, where the mode can tell (exclusive
    /// file mode promises to).
    pub fn released(
        &mut self,
        slot: usize,
        resource: &str,
        lost: Option<bool>,
        foreign_about: bool,
    ) -> Result<(), String> {
        if let Some(a) = self.acquired.get_mut(resource) {
            a.remove(&slot);
        }
        let was_robbed = self
            .robbed
            .get_mut(resource)
            .is_some_and(|r| r.remove(&slot));
        if was_robbed && lost == Some(false) {
            return Err(format!(
                "p{slot}'s lock on {resource} was removed by another tool while held, and its release reported nothing"
            ));
        }
        // Without another tool about, nothing can take a lock file from its
        // holder. (With one, a robbed peer's release may move this holder's
        // file aside for a moment while it checks what it moved.)
        if !was_robbed && lost == Some(true) && !foreign_about {
            return Err(format!(
                "p{slot}'s release of {resource} said the lock was lost, but nothing took it away"
            ));
        }
        Ok(())
    }

    /// `slot` acts as primary of `election` in `epoch`.
    pub fn acting_primary(
        &mut self,
        slot: usize,
        election: &str,
        epoch: u64,
    ) -> Result<(), (Invariant, String)> {
        let acting = self.primaries.entry(election.to_owned()).or_default();
        acting.insert(slot, epoch);
        match acting.iter().find(|&(&s, _)| s != slot) {
            Some((other, e)) => Err((
                Invariant::SinglePrimary,
                format!("p{slot} acts as primary (epoch {epoch}) while p{other} does (epoch {e})"),
            )),
            None => Ok(()),
        }
    }

    pub fn stepped_down(&mut self, slot: usize, election: &str) {
        if let Some(acting) = self.primaries.get_mut(election) {
            acting.remove(&slot);
        }
    }

    /// `slot` claimed `path`: no other live process may hold it.
    pub fn claimed(&mut self, slot: usize, path: &str) -> Result<(), (Invariant, String)> {
        let holders = self.claims.entry(path.to_owned()).or_default();
        let other = holders.iter().find(|&&s| s != slot).copied();
        holders.insert(slot);
        match other {
            Some(other) => Err((
                Invariant::Claims,
                format!("p{slot} claimed {path} while p{other} holds it"),
            )),
            None => Ok(()),
        }
    }

    pub fn unclaimed(&mut self, slot: usize, path: &str) {
        if let Some(holders) = self.claims.get_mut(path) {
            holders.remove(&slot);
        }
    }

    /// A commit landed for a task whose own edits are `own`; `diff` is what
    /// the commit changed. Anything else in it is another task's work.
    pub fn committed(
        &self,
        task: &str,
        diff: &BTreeSet<String>,
        own: &BTreeSet<String>,
    ) -> Result<(), (Invariant, String)> {
        let foreign: Vec<_> = diff.difference(own).cloned().collect();
        if foreign.is_empty() {
            return Ok(());
        }
        Err((
            Invariant::NoCrossCommit,
            format!("{task}'s commit holds {}", foreign.join(", ")),
        ))
    }

    /// An update to `key` was acknowledged: the final value must reach at
    /// least `count` acknowledged updates.
    pub fn ack(&mut self, key: &str) {
        *self.acked.entry(key.to_owned()).or_default() += 1;
    }

    /// Every key acknowledged at least once.
    pub fn acked_keys(&self) -> impl Iterator<Item = &String> {
        self.acked.keys()
    }

    pub fn acked(&self, key: &str) -> u64 {
        self.acked.get(key).copied().unwrap_or(0)
    }

    /// A process died: it holds and acts as nothing any more.
    pub fn died(&mut self, slot: usize) {
        for inside in self.holders.values_mut().chain(self.readers.values_mut()) {
            inside.remove(&slot);
        }
        for acting in self.primaries.values_mut() {
            acting.remove(&slot);
        }
        for holders in self
            .claims
            .values_mut()
            .chain(self.robbed.values_mut())
            .chain(self.acquired.values_mut())
        {
            holders.remove(&slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_live_holder_is_a_violation_but_a_dead_one_is_not() {
        let mut o = Oracle::default();
        o.enter(0, "lock").unwrap();
        let (inv, _) = o.enter(1, "lock").unwrap_err();
        assert_eq!(inv, Invariant::MutualExclusion);
        let mut o = Oracle::default();
        o.enter(0, "lock").unwrap();
        o.died(0);
        o.enter(1, "lock").unwrap();
        o.exit(1, "lock");
        o.enter(2, "lock").unwrap();
    }

    #[test]
    fn a_path_claimed_by_two_live_processes_is_a_violation() {
        let mut o = Oracle::default();
        o.claimed(0, "TODO.md").unwrap();
        o.claimed(1, "state.json").unwrap();
        assert_eq!(o.claimed(1, "TODO.md").unwrap_err().0, Invariant::Claims);
        let mut o = Oracle::default();
        o.claimed(0, "TODO.md").unwrap();
        o.died(0);
        o.claimed(1, "TODO.md").unwrap();
    }

    #[test]
    fn a_commit_holding_another_tasks_edit_is_a_cross_commit() {
        let o = Oracle::default();
        let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        o.committed("t1", &set(&["a"]), &set(&["a", "b"])).unwrap();
        let (inv, detail) = o
            .committed("t1", &set(&["a", "TODO.md"]), &set(&["a"]))
            .unwrap_err();
        assert_eq!(inv, Invariant::NoCrossCommit);
        assert!(detail.contains("TODO.md"));
    }

    #[test]
    fn two_acting_primaries_are_a_violation() {
        let mut o = Oracle::default();
        o.acting_primary(0, "e", 1).unwrap();
        o.stepped_down(0, "e");
        o.acting_primary(1, "e", 2).unwrap();
        let (inv, _) = o.acting_primary(2, "e", 3).unwrap_err();
        assert_eq!(inv, Invariant::SinglePrimary);
    }
}
