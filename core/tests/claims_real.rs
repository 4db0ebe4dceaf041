//! Claims on the real filesystem: what the read limit on records must let
//! through (a task's text is the user's, and kilobytes of it are fine).
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use baton_core::claims::{Claimant, Claimed, Claims};
use baton_core::env::real::RealEnv;
use baton_core::lock::Wait;

#[test]
fn a_claim_with_kilobytes_of_task_text_is_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let claims = Claims::new(dir.path().join("claims"), dir.path());
    let task = "refactor the feedback system, ".repeat(200);
    assert!(task.len() > 4_000);
    let who = Claimant {
        id: "agent-1".into(),
        task: task.clone(),
        ttl: Some(Duration::from_secs(60)),
    };
    let held = claims
        .claim(&env, &["src".to_owned()], &who, Wait::No)
        .unwrap();
    assert!(matches!(held, Claimed::All(_)));
    let found = claims.who(&env, "src/a.rs").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record.task, task);
}
