//! Replay tokens are input (pasted from a log, mistyped, or hostile):
//! parsing never panics, and what parses prints back to itself.

use baton_sim::Config;
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_text_parses_or_is_refused_without_panic(text in ".{0,80}") {
        let _ = text.parse::<Config>();
    }

    #[test]
    fn token_shaped_text_round_trips(
        scenario in "[a-z-]{1,12}",
        strategy in prop_oneof!["random", "dfs", "pct[0-9]{1,2}"],
        seed in any::<u64>(),
        procs in 0u64..200,
        iters in 0u64..200_000,
        faults in "[cmpsrioq]{0,6}",
        budget in 0u32..100,
        suppressed in "([0-9]{1,3}(,[0-9]{1,3}){0,3})?",
        crash_at in "([0-9]{1,4})?",
    ) {
        let token = format!(
            "{scenario}:{strategy}:{seed:x}:{procs}:{iters}:{faults}:{budget}:{suppressed}::{crash_at}"
        );
        if let Ok(config) = token.parse::<Config>() {
            prop_assert!((1..=64).contains(&config.procs), "{token}");
            let again: Config = config.to_string().parse().unwrap();
            prop_assert_eq!(again.to_string(), config.to_string());
        }
    }
}
