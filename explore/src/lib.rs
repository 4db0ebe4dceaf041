//! Checking a user's own program, not a model of it: `baton explore` runs
//! several copies of it and schedules their file-system calls one at a
//! time (random or PCT, with kills and clock skew), `baton crashes` records
//! one run and checks every state a machine crash could leave.
//!
//! The calls are seen by `libbaton_intercept.so`, preloaded into the
//! program (see that crate for what it can and cannot see); the
//! schedulers and the durability model are the simulator's own.

// This crate is the outside world's side: it starts processes, copies
// directories and reads clocks, as `baton-core`'s real environment does.
#![allow(clippy::disallowed_methods)]

pub mod explore;
pub mod scratch;
pub mod session;
