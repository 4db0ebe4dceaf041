//! Random argument vectors given to the real binary: every one ends, by
//! itself and in bounded time, with a documented exit code: never a panic
//! (101) or an abort (134). Commands that would run for long (`sim`,
//! `model`, `verify`) are covered in-process by the parser's own property
//! test; here the vocabulary is the everyday commands.
#![allow(clippy::disallowed_methods)] // a real-process test

mod common;

use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "-w",
            "-n",
            "--stale",
            "--mode",
            "--id",
            "--dir",
            "--ttl",
            "--hand-over",
            "--json",
            "--dry-run",
            "kernel",
            "file",
            "lease",
            "auto",
            "0",
            "-1",
            "NaN",
            "inf",
            "1e300",
            "0.2",
            "18446744073709551616",
            "../../x",
            "",
            "a\nb",
            "f",
            "sub/",
            ".",
            "/",
            "get",
            "update",
            "--cas",
            "--attempts",
            "--task",
            "--force",
            "--claims",
            "s.json",
        ])
        .prop_map(str::to_owned),
        "[a-z./-]{0,6}",
    ]
}

fn argv() -> impl Strategy<Value = Vec<String>> {
    (
        prop::sample::select(vec![
            "lock", "elect", "status", "reap", "claim", "release", "who", "state",
        ]),
        proptest::collection::vec(word(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(cmd, mut words, with_cmd)| {
            words.insert(0, cmd.to_owned());
            if with_cmd {
                words.extend(["--".to_owned(), "true".to_owned()]);
            }
            words
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_argument_vector_panics_aborts_or_hangs(args in argv()) {
        let dir = tempfile::tempdir().unwrap();
        // Words after `lock FILE` are a command (as with flock): only
        // `true` can be found, so no generated word runs anything else.
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink("/bin/true", bin.join("true")).unwrap();
        let ran = common::run_bounded_with(
            std::process::Command::new(common::BATON)
                .current_dir(dir.path())
                .args(&args)
                .env("PATH", &bin),
        );
        let Some((code, err)) = ran else {
            return Err(TestCaseError::fail(format!("{args:?}: still running after 20 s")));
        };
        let code = Some(code);
        // 126/127: a word taken as a command that cannot run.
        prop_assert!(
            matches!(code, Some(0 | 1 | 2 | 75 | 126 | 127)),
            "{args:?}: exit {code:?}: {err}"
        );
    }
}
