//! baton's benchmarks live in `benches/`; run them with
//! `cargo bench -p baton-bench`. See `reports/bench-lock.md` for results.
