//! State updates and claims through the library, uncontended: what one
//! update costs in each mode (the floor is the atomic replace itself:
//! write, fsync, rename, fsync of the directory), and what claiming and
//! releasing ten paths costs. Contended figures, and when each mode wins,
//! come from real processes: `scripts/state-latency.py`.

use std::time::Duration;

use baton_core::atomic::write_atomic;
use baton_core::claims::{Claimant, Claimed, Claims};
use baton_core::env::real::RealEnv;
use baton_core::lock::{Mode, Wait};
use baton_core::state::{self, Strategy, UpdateOptions};
use criterion::{Criterion, criterion_group, criterion_main};

fn increment(old: &[u8]) -> Result<Vec<u8>, ()> {
    let n: u64 = std::str::from_utf8(old)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(())?;
    Ok(format!("{}\n", n + 1).into_bytes())
}

fn updates(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let file = dir.path().join("state.json");
    write_atomic(&env, &file, b"0\n").unwrap();
    let mut group = c.benchmark_group("state update, uncontended");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(
        "floor: atomic replace (write, fsync, rename, fsync dir)",
        |b| b.iter(|| write_atomic(&env, &file, b"1\n").unwrap()),
    );
    for (name, strategy) in [
        ("locked", Strategy::Locked),
        ("cas", Strategy::Cas { max_attempts: 10 }),
    ] {
        let opts = UpdateOptions::new(strategy, Mode::Kernel, Wait::No);
        group.bench_function(name, |b| {
            b.iter(|| state::update(&env, &file, &opts, &mut |_| {}, increment).unwrap())
        });
    }
    group.finish();
}

fn claims(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let claims = Claims::new(dir.path().join("claims"), dir.path());
    let paths: Vec<String> = (0..10).map(|i| format!("src/f{i}.rs")).collect();
    let mut group = c.benchmark_group("claims");
    group.measurement_time(Duration::from_secs(5));
    for (name, ttl) in [
        ("attached", None),
        ("detached", Some(Duration::from_secs(60))),
    ] {
        let who = Claimant {
            id: "bench".into(),
            task: String::new(),
            ttl,
        };
        group.bench_function(format!("claim + release 10 paths, {name}"), |b| {
            b.iter(|| {
                let Claimed::All(held) = claims.claim(&env, &paths, &who, Wait::No).unwrap() else {
                    panic!("uncontended")
                };
                drop(held);
                if ttl.is_some() {
                    claims.release(&env, "bench", None, false).unwrap();
                }
            })
        });
    }
    group.bench_function("who, 10 claims present", |b| {
        let who = Claimant {
            id: "holder".into(),
            task: String::new(),
            ttl: Some(Duration::from_secs(600)),
        };
        let Claimed::All(_held) = claims.claim(&env, &paths, &who, Wait::No).unwrap() else {
            panic!("uncontended")
        };
        b.iter(|| claims.who(&env, "src/f3.rs").unwrap())
    });
    group.finish();
}

criterion_group!(benches, updates, claims);
criterion_main!(benches);
