//! baton-core: coordination for processes that share a working directory.
//!
//! Everything here is written against the environment traits in [`env`], so
//! the same code runs on the real machine ([`env::real::RealEnv`]) and in
//! baton's deterministic simulator.
//!
//! # Glossary
//!
//! One word per concept, used the same way in code, docs and output:
//!
//! - **process**: an OS process, named by (pid, start time) on one boot.
//!   **instance**: one participant (an agent, a plugin instance), which is
//!   a process or part of one.
//! - **holder**: the instance that has a lock. **waiter**: one that wants it.
//! - **sidecar**: `FILE.baton.lock`, the file beside `FILE` that stands for its
//!   lock. **kernel lock**: an advisory `flock` held on an open file.
//! - **dead**: an owner provably gone (its pid exited or was reused, on this
//!   host, boot and pid namespace). **stale**: an owner that cannot be
//!   checked and whose lock file has not changed for the stale threshold.
//!   **reap**: remove a dead or stale owner's lock file.
//! - **token**: one acquisition of a lock (128 random bits). **epoch**: one
//!   primary's term.
//! - **claim**: an instance's hold on a path. **lock**: a hold on a file.
//!   **scope**: the paths of one transaction.
//!
//! Events are past-tense verbs (`acquired`, `reaped`); invariant and
//! protocol names are kebab-case and never change.

pub mod atomic;
pub mod backend;
pub mod backoff;
pub mod catalogue;
pub mod claims;
pub mod commit;
pub mod dirs;
pub mod election;
pub mod env;
pub mod error;
pub mod fence;
pub mod hygiene;
pub mod lease;
pub mod lock;
pub mod record;
pub mod stale;
pub mod state;
pub mod txn;
