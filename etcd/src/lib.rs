//! baton's coordination on etcd, for instances on several hosts, where
//! files stop being a trustworthy medium (kernel locks host-local or
//! emulated on network filesystems, lease mode resting on bounded pauses
//! and clock rates on a filesystem that promises neither).
//!
//! # Semantics, and what they rest on
//!
//! - **Sessions**: a lease per process ([`session`]), refreshed every third
//!   of its TTL; the process stops trusting it at nine tenths of the TTL
//!   after the last refresh it sent. Locks, candidacies and attached claims
//!   are keys under that lease: a process that dies or is cut off loses
//!   them when etcd expires the lease, with no reaper and no clock on the
//!   client side. Safe while the process is not paused for longer than a
//!   tenth of the TTL between judging the lease and acting, and clocks run
//!   at rates within 10 %; past that, the fenced append catches it.
//! - **Locks and elections** ([`queue`]): a key per contender, created in a
//!   transaction conditioned on its absence (`create_revision == 0`),
//!   ordered by creation revision; the first holds, each waiter watches only
//!   the key before its own. The leader's key revision is the epoch: etcd's
//!   revisions are one total order for the whole cluster, so epochs
//!   increase across hosts, as the file backend's do on one.
//! - **Claims** ([`claims`]): all of a request's paths in one transaction.
//! - **Fenced append** ([`fence`]): `baton_core::fence`'s rule (no append
//!   under an epoch older than the newest seen), the check and the write in
//!   one transaction.
//! - Linearizable reads and writes throughout (the gateway's defaults):
//!   a member cut off from the majority cannot answer, and the client moves
//!   to the next endpoint.
//!
//! [`backend::EtcdBackend`] offers all of it through
//! `baton_core::backend::Backend`, the seam the file protocols also
//! implement.
//!
//! # Why the JSON gateway and not gRPC
//!
//! etcd serves its v3 API as JSON over plain HTTP (`/v3/...`) beside gRPC.
//! The gRPC client (`etcd-client`, on tonic) needs `protoc` at build time
//! and some eighty crates; the gateway needs under two hundred lines of HTTP/1.1
//! ([`http`]) and serde_json, which baton has. Watches stream over it as
//! newline-separated JSON. What it costs: a connection per request
//! (loopback or LAN round trips, next to a consensus write's disk sync) and
//! keep-alives as single requests rather than one stream. So the backend
//! is in every build, and a user who never names etcd runs nothing of it.
//!
//! This crate is the outside world's side: it reads clocks, sleeps and
//! opens sockets itself (the simulator does not model a network; the
//! models in `baton-model` and the fault tests against a real cluster
//! check it instead).
#![allow(clippy::disallowed_methods)]

pub mod backend;
pub mod check;
pub mod claims;
pub mod client;
pub mod fence;
pub mod http;
pub mod queue;
pub mod session;

/// The endpoints: `--endpoints` if given, else `BATON_ETCD_ENDPOINTS`,
/// comma-separated.
pub fn endpoints(given: Option<&str>) -> Vec<String> {
    let list = given
        .map(str::to_owned)
        .or_else(|| std::env::var("BATON_ETCD_ENDPOINTS").ok())
        .unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A name as one key component: `%` and `/` escaped, so that no name's
/// prefix is another's (a lock `a` must not see the keys of a lock `a/b`).
pub fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

/// Where a lock's line is.
pub fn lock_prefix(name: &str) -> Vec<u8> {
    format!("/baton/lock/{}/", escape(name)).into_bytes()
}

/// Where an election's line is.
pub fn election_prefix(name: &str) -> Vec<u8> {
    format!("/baton/election/{}/", escape(name)).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_is_a_prefix_of_another() {
        assert_eq!(escape("a/b%c"), "a%2Fb%25c");
        assert!(!lock_prefix("a/b").starts_with(&lock_prefix("a")));
        assert_ne!(lock_prefix("a/b"), lock_prefix("a%2Fb"));
    }
}
