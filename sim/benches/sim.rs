//! Simulator throughput: schedules per second and environment calls per
//! second, one core, on the lock scenarios with every fault enabled.

use baton_sim::{StrategyKind, run, scenarios};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn lock_scenarios(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated schedule");
    for name in ["baton-lock-kernel", "baton-lock-file", "naive-reap"] {
        let scenario = scenarios::scenario(name).expect("catalogued");
        // Calls per schedule, averaged over the seeds the bench cycles through.
        let seeds = 64u64;
        let calls: u64 = (0..seeds)
            .map(|s| run(&scenario, &scenario.config(StrategyKind::Random, s), false).steps)
            .sum();
        group.throughput(Throughput::Elements(calls / seeds));
        let mut seed = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                seed = (seed + 1) % seeds;
                run(
                    &scenario,
                    &scenario.config(StrategyKind::Random, seed),
                    false,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lock_scenarios);
criterion_main!(benches);
