//! baton-sim: a deterministic simulator that runs `baton-core`'s production
//! code on a simulated machine and finds the races no test on a real one
//! would hit.
//!
//! - [`fs`]: a filesystem with Linux semantics: `O_EXCL`, `link`, atomic
//!   `rename`, unlinked-but-open inodes, `flock` per open file description,
//!   and a page cache whose unsynced data a machine crash may lose or tear.
//! - [`env`]: `baton-core`'s environment traits on it, mirroring the real
//!   environment; every call is a scheduling point.
//! - the kernel (private): processes on a deterministic scheduler, with
//!   virtual time, per-process skewed clocks and faults drawn from the seed
//!   ([`fault`]): crashes at any call, machine crashes, pauses, clock steps,
//!   pid reuse, injected I/O errors.
//! - [`oracle`]: the invariants of DESIGN.md, checked as the run goes, and
//!   liveness checked the VOPR way: after the fault phase the world heals and
//!   every process must finish within a bound.
//! - [`run`]: one seed, many seeds, replay tokens, shrinking, guided replay
//!   of a model's counterexample; [`explore`]: bounded-exhaustive DFS.
//!
//! # Checking your own protocol
//!
//! Write the protocol against the environment traits, describe its
//! processes as a [`Scenario`], and [`check`] it over many seeds. A failure
//! carries a replay token that [`replay`] turns into the same trace, bit for
//! bit.
//!
//! ```
//! use std::path::Path;
//! use std::time::Duration;
//! use baton_core::catalogue::{Expect, Invariant};
//! use baton_core::env::{Clock, Fs};
//! use baton_sim::{Scenario, StrategyKind, check, replay};
//!
//! // Two processes "lock" by checking that a file is absent, then creating
//! // it: check-then-act, a race.
//! let mut racy = Scenario::new("racy-check-then-create", 2, |env, probe, _role| {
//!     let lock = Path::new("/lock");
//!     if env.metadata(lock).is_err() {
//!         let _ = env.open(lock, true);
//!         probe.enter("lock");
//!         env.sleep(Duration::from_millis(1)); // work while holding it
//!         probe.exit("lock");
//!     }
//! });
//! racy.expect = Expect::Violates(Invariant::MutualExclusion);
//! let found = check(&racy, StrategyKind::Random, 0, 100, &mut |_| {});
//! let failure = found.failure.expect("the race is found");
//! let token = failure.config.to_string();
//! let again = replay(&racy, &token).unwrap();
//! assert_eq!(again.violation, replay(&racy, &token).unwrap().violation);
//! assert!(again.trace.iter().any(|l| l.contains("VIOLATION mutual-exclusion")));
//! ```

mod clock;
pub mod env;
pub mod explore;
pub mod fault;
pub mod fs;
pub mod git;
mod kernel;
pub mod oracle;
pub mod rng;
pub mod run;
pub mod scenarios;
pub mod strategy;
pub mod swimlane;

pub use env::{Probe, SimEnv, SimFile};
pub use fault::FaultKinds;
pub use kernel::Event;
pub use oracle::{Finding, Violation};
pub use run::{Check, Config, Report, Role, Scenario, check, replay, run, run_guided, shrink};
pub use strategy::{GuideStep, StrategyKind};
