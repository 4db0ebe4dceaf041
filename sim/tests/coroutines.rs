//! The simulated processes are coroutines on one OS thread: what that must
//! not change. A panicking process is reported, not fatal, even while
//! others are suspended mid-call and its destructors make calls as it
//! unwinds; many processes and deep stacks run; runs stay pure functions of
//! their token.

use std::path::Path;
use std::time::Duration;

use baton_core::env::{Clock, Fs, OpenFile};
use baton_sim::{Finding, Scenario, StrategyKind, replay, run};

/// Calls the environment from its destructor, as production guards do.
struct Tidy<'a, E: Fs>(&'a E, &'a Path);

impl<E: Fs> Drop for Tidy<'_, E> {
    fn drop(&mut self) {
        let _ = self.0.remove_file(self.1);
    }
}

#[test]
fn a_panicking_process_is_reported_while_the_others_are_suspended() {
    let scenario = Scenario::new("panics", 3, |env, _probe, role| {
        let mine = format!("/f{}", role.index);
        let file = env.open(Path::new(&mine), true).expect("create");
        let _tidy = Tidy(env, Path::new(&mine));
        for _ in 0..5 {
            file.write_all_at(b"x", 0).expect("write");
            env.sleep(Duration::from_millis(1));
        }
        assert!(role.index != 1, "p1 fails on purpose");
    });
    for seed in 0..20 {
        let report = run(
            &scenario,
            &scenario.config(StrategyKind::Random, seed),
            true,
        );
        let v = report.violation.expect("the panic is reported");
        assert_eq!(v.finding, Finding::Panic, "seed {seed}: {}", v.detail);
        assert!(v.detail.contains("p1 fails on purpose"), "{}", v.detail);
    }
}

#[test]
fn sixty_four_processes_with_deep_stacks_run_to_the_end() {
    fn deep(env: &impl Clock, n: u32) -> u64 {
        // A frame of a few hundred bytes per level, a call at the bottom.
        let pad = [n as u8; 256];
        if n == 0 {
            env.sleep(Duration::from_millis(1));
            return u64::from(pad[0]);
        }
        deep(env, n - 1) + u64::from(pad[usize::try_from(n).unwrap() % 256])
    }
    let scenario = Scenario::new("deep", 64, move |env, probe, _role| {
        assert_eq!(deep(env, 1500), deep_sum());
        probe.mark("finished");
    });
    let report = run(&scenario, &scenario.config(StrategyKind::Random, 7), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert_eq!(report.marks.get("finished"), Some(&64));
}

/// What `deep(_, 1500)` adds up: `n % 256` for n in 1..=1500 (pad holds n as u8).
fn deep_sum() -> u64 {
    (1..=1500u64).map(|n| n % 256).sum()
}

#[test]
fn a_token_replays_to_the_same_trace_twice() {
    let scenario = baton_sim::scenarios::scenario("baton-lock-kernel").expect("catalogued");
    let token = scenario.config(StrategyKind::Random, 11).to_string();
    let a = replay(&scenario, &token).unwrap();
    let b = replay(&scenario, &token).unwrap();
    assert!(a.steps > 100, "a real run: {} steps", a.steps);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.hash, b.hash);
}
