//! A result handed from a helper thread to a waiter that may give up first.
//!
//! `flock(2)` has no timeout, so a timed wait blocks in `flock` on a helper
//! thread while the caller waits here until its deadline. Exactly one side
//! must end up owning the lock: the waiter, if the helper delivered before
//! the waiter gave up; otherwise the helper, which must give it back. A lock
//! owned by both (two holders) or by neither (a leaked lock, held forever)
//! is the bug this module exists to exclude, and `tests/loom_handoff.rs`
//! checks every interleaving of [`Handoff::deliver`] against
//! [`Handoff::abandon`] with loom (`RUSTFLAGS="--cfg loom"`).
//!
//! This is the only state baton-core shares between threads.

#[cfg(loom)]
use loom::sync::{Condvar, Mutex};
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex};

#[derive(Debug)]
enum State<T> {
    Waiting,
    Delivered(T),
    Abandoned,
}

/// The meeting point of one timed wait.
#[derive(Debug)]
pub struct Handoff<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff {
            state: Mutex::new(State::Waiting),
            wake: Condvar::new(),
        }
    }
}

impl<T> Handoff<T> {
    /// Helper side: hands `result` over. Returns it back if the waiter has
    /// already given up: the helper then owns it and must undo it.
    pub fn deliver(&self, result: T) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            State::Waiting => {
                *state = State::Delivered(result);
                self.wake.notify_one();
                None
            }
            State::Abandoned => Some(result),
            State::Delivered(_) => unreachable!("a hand-off is delivered once"),
        }
    }

    /// Waiter side: takes the result if it was delivered, else gives up for
    /// good (a later delivery is returned to the helper).
    pub fn abandon(&self) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *state, State::Abandoned) {
            State::Delivered(result) => Some(result),
            State::Waiting => None,
            State::Abandoned => unreachable!("a hand-off is abandoned once"),
        }
    }

    /// Waiter side: waits for a delivery, calling `wait_more` with the guard
    /// each time the state is not yet delivered; `wait_more` returns false
    /// at the deadline. Then takes the result or gives up.
    pub fn wait(&self, mut wait_more: impl FnMut() -> Option<std::time::Duration>) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while matches!(*state, State::Waiting) {
            let Some(left) = wait_more() else { break };
            state = self
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(state);
        self.abandon()
    }
}
