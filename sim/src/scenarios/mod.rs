//! The catalogue's scenarios, by name. Names and expected outcomes come
//! from `baton_core::catalogue`, so every world prints one table.

mod claims;
mod commit;
mod counter;
mod election;
mod lock;
mod naive_reap;
mod state;

use baton_core::catalogue::{self, PROTOCOLS};

use crate::run::Scenario;

/// Builds the scenario named `name`, if the simulator runs it.
pub fn scenario(name: &str) -> Option<Scenario> {
    let mut s = match name {
        "naive-reap" => naive_reap::scenario(),
        "registry-rmw" => election::registry_rmw_scenario(),
        "registry-150ms" => election::registry_150ms_scenario(),
        "dir-election" => election::dir_election_scenario(),
        "baton-election" => election::baton_election_scenario(),
        "baton-election-reaped" => election::baton_election_reaped_scenario(),
        "baton-election-lease" => election::baton_election_lease_scenario(),
        "baton-election-lease-paused" => election::baton_election_lease_paused_scenario(),
        "baton-lock-kernel" => lock::scenario(baton_core::lock::Mode::Kernel),
        "baton-lock-file" => lock::scenario(baton_core::lock::Mode::File),
        "baton-lock-shared" => lock::shared_scenario(),
        "baton-lock-handle" => lock::handle_scenario(),
        "baton-lock-file-noflock" => lock::noflock_scenario(),
        "baton-lock-file-noopflock" => lock::noop_flock_scenario(),
        "baton-lock-file-two-hosts" => lock::two_hosts_scenario(false),
        "baton-lock-file-two-hosts-local" => lock::two_hosts_scenario(true),
        "baton-lock-file-foreign" => lock::foreign_scenario(baton_core::lock::Mode::File),
        "baton-lock-kernel-foreign" => lock::foreign_scenario(baton_core::lock::Mode::Kernel),
        "state-rmw-unlocked" => state::state_rmw_unlocked(),
        "state-write-in-place" => state::state_write_in_place(),
        "baton-state" => state::baton_state(),
        "baton-state-cas" => state::baton_state_cas(),
        "claims-shared-json" => claims::claims_shared_json(),
        "baton-claims" => claims::baton_claims(),
        "commit-shared-index" => commit::commit_shared_index(),
        "commit-lock-staging" => commit::commit_lock_staging(),
        "baton-txn" => commit::baton_txn(),
        _ => return None,
    };
    let protocol = catalogue::protocol(name).expect("every scenario is catalogued");
    s.name = protocol.name.to_owned();
    s.expect = protocol.expect;
    Some(s)
}

/// Every catalogued protocol the simulator runs, in catalogue order.
pub fn all() -> Vec<Scenario> {
    PROTOCOLS.iter().filter_map(|p| scenario(p.name)).collect()
}
