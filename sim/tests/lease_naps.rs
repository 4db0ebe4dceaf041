//! A lease challenger's naps between attempts, on virtual time: half the
//! retry period plus up to a quarter of it at random, so challengers spread
//! out and none waits much past the moment a lease lapses.

use std::path::Path;
use std::time::Duration;

use baton_core::election::Election;
use baton_core::env::Clock;
use baton_core::lease::{self, LeaseTiming};
use baton_core::lock::Wait;
use baton_sim::{StrategyKind, run};

const LEASE: Duration = Duration::from_secs(15);

#[test]
fn a_challenger_naps_between_half_and_three_quarters_of_the_retry_period() {
    let timing = LeaseTiming::from_lease(LEASE);
    let mut s = baton_sim::Scenario::new("lease-naps", 2, move |env, _, role| {
        let e = Election::new("/w/el");
        if role.index == 0 {
            // Elected, then silent: the lease lapses unrenewed.
            let held = lease::campaign(env, &e, "a", timing, Wait::No).unwrap();
            assert!(held.is_some());
            std::mem::forget(held);
            return;
        }
        env.sleep(Duration::from_millis(10));
        let got = lease::campaign(env, &e, "b", timing, Wait::Forever).unwrap();
        assert!(got.is_some(), "the lapsed lease is taken");
        std::mem::forget(got);
    });
    s.setup = Box::new(|fs| {
        fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
            .unwrap();
    });
    let mut naps = Vec::new();
    for seed in 0..20 {
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        for line in report.trace.iter().filter(|l| l.contains(" p1 ")) {
            if let Some(d) = line.split("sleep(").nth(1) {
                let d = d.trim_end_matches(')');
                if d != "10ms" {
                    naps.push(d.to_owned());
                }
            }
        }
    }
    assert!(naps.len() > 50, "{}", naps.len());
    let parse = |d: &str| -> Duration {
        if let Some(ms) = d.strip_suffix("ms") {
            Duration::from_secs_f64(ms.parse::<f64>().unwrap() / 1e3)
        } else {
            Duration::from_secs_f64(d.strip_suffix('s').unwrap().parse().unwrap())
        }
    };
    let (low, high) = (timing.retry / 2, timing.retry * 3 / 4);
    let mut spread = (Duration::MAX, Duration::ZERO);
    for d in &naps {
        let d = parse(d);
        assert!(
            d >= low && d <= high,
            "a nap of {d:?} outside {low:?}..={high:?}"
        );
        spread = (spread.0.min(d), spread.1.max(d));
    }
    // Spread over the range, not all one length.
    assert!(spread.1 - spread.0 > timing.retry / 8, "{spread:?}");
}
