//! Lease mode's versions on the real filesystem: the timing proportions,
//! an election with no lease yet, a lease directory that is not one,
//! hostile version files, and how many old versions a renewal keeps.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

use std::time::Duration;

use baton_core::election::{Election, ElectionError};
use baton_core::env::real::RealEnv;
use baton_core::lease::{Challenger, LeaseTiming, current};

#[test]
fn timing_follows_client_gos_proportions() {
    let t = LeaseTiming::from_lease(Duration::from_secs(15));
    assert_eq!(t.lease, Duration::from_secs(15));
    assert_eq!(t.renew_deadline, Duration::from_secs(10), "two thirds");
    assert_eq!(t.retry, Duration::from_secs(2), "two fifteenths");
}

#[test]
fn an_election_with_no_lease_directory_has_no_lease_and_a_file_there_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let election = Election::new(dir.path().join("e"));
    assert_eq!(current(&env, &election).unwrap(), None, "nothing yet");
    std::fs::create_dir(dir.path().join("e")).unwrap();
    assert_eq!(
        current(&env, &election).unwrap(),
        None,
        "no lease directory"
    );
    // Something else where the lease directory goes cannot be read as
    // "no lease": a challenger would take a lease it cannot see.
    std::fs::write(dir.path().join("e/lease"), "not a directory\n").unwrap();
    assert!(current(&env, &election).is_err());
}

#[test]
fn a_version_that_leaves_no_successor_is_refused() {
    let env = RealEnv::new().unwrap();
    for (seq, epoch) in [(3u64, u64::MAX), (u64::MAX, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let lease = dir.path().join("e/lease");
        std::fs::create_dir_all(&lease).unwrap();
        std::fs::write(
            lease.join(format!("{seq:020}.json")),
            format!("{{\"seq\":{seq},\"epoch\":{epoch},\"holder\":\"x\"}}\n"),
        )
        .unwrap();
        match current(&env, &Election::new(dir.path().join("e"))) {
            Err(ElectionError::BadRecord { why, .. }) => {
                assert!(why.contains("cannot be followed"), "{why}")
            }
            other => panic!("seq {seq} epoch {epoch}: {other:?}"),
        }
    }
}

#[test]
fn renewals_keep_the_newest_seventeen_versions() {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let election = Election::new(dir.path().join("e"));
    let timing = LeaseTiming::from_lease(Duration::from_secs(60));
    let mut challenger = Challenger::new(&env, &election, "a", timing).unwrap();
    let mut holder = challenger
        .attempt()
        .unwrap()
        .expect("a free lease is taken");
    for _ in 0..29 {
        assert!(holder.renew().unwrap());
    }
    assert_eq!(holder.record.seq, 30);
    let mut present: Vec<u64> = std::fs::read_dir(dir.path().join("e/lease"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json").unwrap().parse().unwrap()
        })
        .collect();
    present.sort_unstable();
    assert_eq!(present, (14..=30).collect::<Vec<u64>>());
    assert_eq!(current(&env, &election).unwrap().unwrap().seq, 30);
}

#[test]
fn a_released_lease_is_taken_at_the_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let election = Election::new(dir.path().join("e"));
    let timing = LeaseTiming::from_lease(Duration::from_secs(60));
    let mut a = Challenger::new(&env, &election, "a", timing).unwrap();
    let held = a.attempt().unwrap().expect("free");
    let mut b = Challenger::new(&env, &election, "b", timing).unwrap();
    assert!(b.attempt().unwrap().is_none(), "held by a");
    held.release().unwrap();
    let record = current(&env, &election).unwrap().unwrap();
    assert!(record.holder.is_empty(), "released: {record:?}");
    // Not a lease's duration later: at once.
    let taken = b.attempt().unwrap().expect("a free lease is taken at once");
    assert_eq!(taken.record.holder, "b");
    assert_eq!(taken.epoch(), record.epoch + 1);
}

#[test]
fn a_challenger_times_the_silence_from_the_last_version_it_saw() {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let election = Election::new(dir.path().join("e"));
    let timing = LeaseTiming::from_lease(Duration::from_millis(300));
    let mut a = Challenger::new(&env, &election, "a", timing).unwrap();
    let mut held = a.attempt().unwrap().expect("free");
    let mut b = Challenger::new(&env, &election, "b", timing).unwrap();
    assert!(
        b.attempt().unwrap().is_none(),
        "b starts watching version 1"
    );
    assert!(held.renew().unwrap(), "version 2");
    assert!(
        b.attempt().unwrap().is_none(),
        "a new version: watched afresh"
    );
    // a stops renewing (as if dead); b takes over once version 2 has been
    // unchanged for the lease's duration.
    let started = std::time::Instant::now();
    let taken = loop {
        if let Some(t) = b.attempt().unwrap() {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never taken over"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(taken.record.holder, "b");
}
