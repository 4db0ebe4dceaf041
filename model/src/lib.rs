//! baton-model: stateright models of coordination protocols, one file per
//! protocol, each step one file operation as the production code makes it
//! (`Create`, `Link`, `Unlink`, `TryLock`, ...), so a counterexample reads
//! like a simulator trace.
//!
//! The simulator samples schedules of the real code; these models cover
//! every schedule of the protocol's design for small instance counts. Each
//! model states its safety properties (`always`), and `sometimes`
//! properties proving it is not vacuous (a lock is taken, a stale lock is
//! reaped, a failover happens). Faults are actions: a crash of any process
//! at any step (bounded in number); the passage of time that makes a lock
//! look old. Liveness is not checked with `eventually` here (it gives false
//! negatives on cyclic paths); the simulator checks it after healing.

mod check;
mod commits;
mod dir_election;
mod election;
pub mod lock_file;
mod lock_kernel;
pub mod naive_reap;
mod progress;
mod registry;
mod registry_150ms;
mod symmetry;

pub use check::{MODELS, Verdict, check, explore};
pub use progress::ProgressVerdict;
