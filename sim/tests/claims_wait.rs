//! A claimant's bounded wait, on virtual time: it gives up when its time
//! is up, not a nap later. On real clocks only a lower bound can be tested
//! (a loaded machine is late anyway); here the upper one can too.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::claims::{Claimant, Claimed, Claims};
use baton_core::env::Clock;
use baton_core::lock::Wait;
use baton_sim::{StrategyKind, run};

const WAIT: Duration = Duration::from_secs(1);

/// How long the second claimant waited for a path the first holds, seed
/// by seed (the seed sets the backoff's jitter).
fn waits(seeds: u64) -> Vec<Duration> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let mut s = baton_sim::Scenario::new("claims-wait", 2, move |env, _, role| {
        let claims = Claims::new("/w/claims", "/w");
        let who = Claimant {
            id: format!("p{}", role.index),
            task: "wait".into(),
            ttl: None,
        };
        let paths = ["a".to_owned()];
        if role.index == 0 {
            let got = claims.claim(env, &paths, &who, Wait::No).unwrap();
            assert!(matches!(got, Claimed::All(_)));
            // Held well past the other's wait.
            env.sleep(WAIT * 5);
            drop(got);
        } else {
            // Let the first claim first.
            env.sleep(Duration::from_millis(100));
            let started = env.monotonic();
            let got = claims.claim(env, &paths, &who, Wait::For(WAIT)).unwrap();
            assert!(matches!(got, Claimed::Conflict { .. }));
            sink.lock()
                .unwrap()
                .push(env.monotonic().saturating_since(started));
        }
    });
    s.setup = Box::new(|fs| {
        fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
            .unwrap();
    });
    for seed in 0..seeds {
        let report = run(&s, &s.config(StrategyKind::Random, seed), false);
        assert!(report.violation.is_none(), "{:?}", report.violation);
    }
    seen.lock().unwrap().clone()
}

#[test]
fn a_bounded_claim_gives_up_when_its_time_is_up_and_not_a_nap_later() {
    let waits = waits(20);
    assert_eq!(waits.len(), 20);
    for w in waits {
        assert!(w >= WAIT, "gave up early: {w:?}");
        // The last round after the deadline (the directory's lock, a scan)
        // costs a hundred-odd calls of 20 us; a nap (5 to 250 ms) past the
        // deadline is a wait that overran.
        assert!(w < WAIT + Duration::from_millis(20), "overran: {w:?}");
    }
}
