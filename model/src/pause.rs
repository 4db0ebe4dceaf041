//! The pause fault, as the timed models inject it: one process at a time
//! stops running (SIGSTOP, a laptop lid) until its next step, however many
//! ticks pass meanwhile; a running process takes its timed steps within
//! the model's bound. The models differ in what a bound is; this is what a
//! pause is.

/// Who is paused now, and how many pauses were spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pauses {
    pub paused: Option<u8>,
    pub used: u8,
}

impl Pauses {
    /// Whether a pause may start now, within `budget` pauses a run.
    pub fn available(self, budget: u8) -> bool {
        self.paused.is_none() && self.used < budget
    }

    pub fn pause(&mut self, p: u8) {
        assert!(self.paused.is_none(), "one process paused at a time");
        self.paused = Some(p);
        self.used += 1;
    }

    pub fn is_paused(self, p: u8) -> bool {
        self.paused == Some(p)
    }

    /// `p` took a step, or died: it is not paused any more.
    pub fn resume(&mut self, p: u8) {
        if self.paused == Some(p) {
            self.paused = None;
        }
    }

    /// The same, with processes renumbered by `id` (symmetry reduction).
    pub fn renumbered(self, id: impl Fn(u8) -> u8) -> Pauses {
        Pauses {
            paused: self.paused.map(id),
            ..self
        }
    }
}
