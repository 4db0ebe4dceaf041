//! Every interleaving of a timed flock wait's hand-off, checked by loom:
//! the lock ends up owned by exactly one side, never both, never neither.
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p baton-core --test loom_handoff`.
#![cfg(loom)]

use baton_core::env::handoff::Handoff;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn lock_is_owned_by_exactly_one_side() {
    loom::model(|| {
        let handoff = Arc::new(Handoff::default());
        // Who owns the lock the helper acquired: counted once per owner.
        let owners = Arc::new(AtomicUsize::new(0));
        let helper = {
            let (handoff, owners) = (Arc::clone(&handoff), Arc::clone(&owners));
            loom::thread::spawn(move || {
                // flock returned: the helper holds the lock for the waiter.
                if handoff.deliver(()).is_some() {
                    owners.fetch_add(1, Ordering::SeqCst); // helper keeps it, to give back
                }
            })
        };
        // The waiter reaches its deadline at any point of the helper's run.
        if handoff.abandon().is_some() {
            owners.fetch_add(1, Ordering::SeqCst); // waiter returns true
        }
        helper.join().unwrap();
        assert_eq!(owners.load(Ordering::SeqCst), 1);
    });
}
