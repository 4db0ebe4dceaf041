//! baton-model: stateright models of coordination protocols, one file per
//! protocol, each step one file operation as the production code makes it
//! (`Create`, `Link`, `Unlink`, `TryLock`, ...), so a counterexample reads
//! like a simulator trace.
//!
//! The simulator samples schedules of the real code; these models cover
//! every schedule of the protocol's design for small instance counts. Each
//! model states its safety properties (`always`, named after the
//! invariants), and `sometimes` properties proving it is not vacuous (a
//! lock is taken, a stale lock is reaped, a failover happens). Faults are
//! actions: a crash of any process at any step, pauses, pid reuse, and
//! clock skew where the protocol reads clocks; time is a global tick.
//! Liveness is checked as bounded progress ([`ProgressVerdict`]), not with
//! `eventually`, which gives false negatives on cyclic paths. Protocols
//! that never compare process ids are reduced by symmetry.

mod check;
pub mod claims;
pub mod commits;
pub mod dir_election;
mod election;
pub mod lease;
pub mod lock_file;
mod lock_kernel;
pub mod naive_reap;
mod pause;
mod progress;
mod registry;
mod registry_150ms;
pub mod state;
mod symmetry;

pub use check::{MODELS, Verdict, check, explore};
pub use progress::ProgressVerdict;
