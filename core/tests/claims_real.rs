//! Claims on the real filesystem, as a library user meets them: how paths
//! are named, who excludes whom, how claims live, die and are released, and
//! what the claims directory may hold that is not a claim.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use baton_core::claims::{ClaimError, ClaimRecord, Claimant, Claimed, Claims};
use baton_core::env::real::RealEnv;
use baton_core::env::{Clock, Processes};
use baton_core::lock::Wait;

fn setup() -> (tempfile::TempDir, RealEnv, Claims) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let claims = Claims::new(dir.path().join("claims"), dir.path());
    (dir, env, claims)
}

fn attached(id: &str) -> Claimant {
    Claimant {
        id: id.into(),
        task: format!("task of {id}"),
        ttl: None,
    }
}

fn detached(id: &str, ttl: Duration) -> Claimant {
    Claimant {
        id: id.into(),
        task: format!("task of {id}"),
        ttl: Some(ttl),
    }
}

fn paths(ps: &[&str]) -> Vec<String> {
    ps.iter().map(|p| (*p).to_owned()).collect()
}

fn claim_files(claims: &Claims) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(&claims.dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".claim"))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A record as another claimant would have written it.
fn record(env: &RealEnv, path: &str, id: &str, expires_boot_ms: Option<u64>) -> ClaimRecord {
    let me = env.identity();
    ClaimRecord {
        baton: 1,
        path: path.into(),
        id: id.into(),
        task: "planted".into(),
        pid: me.pid,
        start_time: me.start_time,
        boot_id: me.boot_id.clone(),
        pid_ns: me.pid_ns,
        host: me.host.clone(),
        claimed_at_ms: 0,
        expires_boot_ms,
    }
}

fn plant(claims: &Claims, r: &ClaimRecord) -> std::path::PathBuf {
    fs::create_dir_all(&claims.dir).unwrap();
    let file = claims.file_for(&r.path);
    let mut bytes = serde_json::to_vec(r).unwrap();
    bytes.push(b'\n');
    fs::write(&file, bytes).unwrap();
    file
}

fn far_future(env: &RealEnv) -> Option<u64> {
    Some(u64::try_from((env.since_boot() + Duration::from_secs(3600)).as_millis()).unwrap())
}

#[test]
fn a_claim_with_kilobytes_of_task_text_is_read_back_whole() {
    let (_dir, env, claims) = setup();
    let task = "refactor the feedback system, ".repeat(200);
    assert!(task.len() > 4_000);
    let who = Claimant {
        task: task.clone(),
        ..detached("agent-1", Duration::from_secs(60))
    };
    let held = claims
        .claim(&env, &paths(&["src"]), &who, Wait::No)
        .unwrap();
    assert!(matches!(held, Claimed::All(_)));
    let found = claims.who(&env, "src/a.rs").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record.task, task);
}

#[test]
fn paths_are_named_relative_to_the_root_whatever_their_spelling() {
    let (dir, env, claims) = setup();
    let root = dir.path();
    fs::create_dir(root.join("src")).unwrap();
    fs::write(root.join("src/x.rs"), "x").unwrap();
    fs::create_dir(root.join("real")).unwrap();
    symlink(root.join("real"), root.join("link")).unwrap();
    let n = |cwd: &Path, p: &str| claims.normalise(&env, cwd, Path::new(p));
    assert_eq!(n(root, "src/x.rs").unwrap(), "src/x.rs");
    assert_eq!(n(root, "./src/../src/x.rs").unwrap(), "src/x.rs");
    assert_eq!(n(&root.join("src"), "x.rs").unwrap(), "src/x.rs");
    assert_eq!(n(Path::new("/"), root.to_str().unwrap()).unwrap(), ".");
    // A path that does not exist yet is taken as spelt past what exists.
    assert_eq!(n(root, "new/deeper/file.md").unwrap(), "new/deeper/file.md");
    // Symlinks in the existing part are resolved: one file, one claim.
    assert_eq!(n(root, "link/y").unwrap(), "real/y");
    assert!(matches!(
        n(root, "../elsewhere"),
        Err(ClaimError::Outside { .. })
    ));
    assert!(matches!(n(root, "a\nb"), Err(ClaimError::BadPath { .. })));
    // Past a regular file nothing can exist: an error, not a name.
    let e = n(root, "src/x.rs/inside").unwrap_err();
    assert!(matches!(e, ClaimError::Io(_)), "{e}");
}

#[test]
fn an_attached_claim_holds_a_locked_file_per_path_and_goes_with_its_holder() {
    let (_dir, env, claims) = setup();
    let Claimed::All(held) = claims
        .claim(&env, &paths(&["b", "a", "a"]), &attached("one"), Wait::No)
        .unwrap()
    else {
        panic!("nothing else claims");
    };
    assert_eq!(held.paths, paths(&["a", "b"]));
    assert_eq!(held.files().count(), 2);
    assert_eq!(claim_files(&claims), ["a.claim", "b.claim"]);
    let status = claims.status(&env).unwrap();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|c| c.alive && c.record.id == "one"));
    assert!(status.iter().all(|c| c.expires_in.is_none()));
    drop(held);
    assert!(claim_files(&claims).is_empty());
    assert!(claims.status(&env).unwrap().is_empty());
}

#[test]
fn a_live_claim_excludes_every_overlapping_path_of_another_and_nothing_else() {
    let (_dir, env, claims) = setup();
    let Claimed::All(_held) = claims
        .claim(&env, &paths(&["src"]), &attached("one"), Wait::No)
        .unwrap()
    else {
        panic!("nothing else claims");
    };
    for wanted in [&["srcx", "docs/src"][..], &["src2"]] {
        let got = claims
            .claim(&env, &paths(wanted), &attached("two"), Wait::No)
            .unwrap();
        assert!(matches!(got, Claimed::All(_)), "{wanted:?}");
    }
    for wanted in [&["docs", "src/x.rs"][..], &["src"], &["."]] {
        match claims
            .claim(&env, &paths(wanted), &attached("two"), Wait::No)
            .unwrap()
        {
            Claimed::Conflict { path, holder } => {
                assert!(wanted.contains(&path.as_str()), "{path}");
                assert_eq!(holder.id, "one");
                assert_eq!(holder.path, "src");
            }
            Claimed::All(_) => panic!("{wanted:?} overlaps src"),
        }
    }
    // All or nothing: the conflicting call claimed `docs` not at all.
    let who = claims.who(&env, "docs").unwrap();
    assert!(who.is_empty(), "{who:?}");
    // A detached claim of another instance excludes too.
    claims
        .claim(
            &env,
            &paths(&["lib"]),
            &detached("three", Duration::from_secs(60)),
            Wait::No,
        )
        .unwrap();
    assert!(matches!(
        claims
            .claim(&env, &paths(&["lib/a"]), &attached("two"), Wait::No)
            .unwrap(),
        Claimed::Conflict { .. }
    ));
}

#[test]
fn an_instance_renews_its_detached_claim_but_is_kept_out_by_its_own_attached_one() {
    let (_dir, env, claims) = setup();
    let short = detached("agent", Duration::from_secs(10));
    let long = detached("agent", Duration::from_secs(1000));
    claims
        .claim(&env, &paths(&["a"]), &short, Wait::No)
        .unwrap();
    let before = claims.status(&env).unwrap()[0].expires_in.unwrap();
    assert!(before <= Duration::from_secs(10));
    let again = claims.claim(&env, &paths(&["a"]), &long, Wait::No).unwrap();
    assert!(matches!(again, Claimed::All(_)));
    let status = claims.status(&env).unwrap();
    assert_eq!(status.len(), 1);
    assert!(status[0].expires_in.unwrap() > Duration::from_secs(900));

    let Claimed::All(_held) = claims
        .claim(&env, &paths(&["b"]), &attached("agent"), Wait::No)
        .unwrap()
    else {
        panic!("b is free");
    };
    // Its command runs on; a second process of the same instance waits.
    assert!(matches!(
        claims
            .claim(&env, &paths(&["b"]), &attached("agent"), Wait::No)
            .unwrap(),
        Claimed::Conflict { .. }
    ));
}

#[test]
fn a_bounded_wait_for_a_conflict_lasts_its_time_and_returns_the_conflict() {
    let (_dir, env, claims) = setup();
    let Claimed::All(_held) = claims
        .claim(&env, &paths(&["a"]), &attached("one"), Wait::No)
        .unwrap()
    else {
        panic!("a is free");
    };
    let started = Instant::now();
    let got = claims
        .claim(
            &env,
            &paths(&["a"]),
            &attached("two"),
            Wait::For(Duration::from_millis(300)),
        )
        .unwrap();
    // A lower bound only: the protocol promises to wait that long.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(got, Claimed::Conflict { .. }));
}

#[test]
fn a_waiter_gets_the_paths_once_their_claim_is_released() {
    let (_dir, env, claims) = setup();
    let Claimed::All(held) = claims
        .claim(&env, &paths(&["a"]), &attached("one"), Wait::No)
        .unwrap()
    else {
        panic!("a is free");
    };
    let claims2 = claims.clone();
    let waiter = std::thread::spawn(move || {
        let env = RealEnv::new().unwrap();
        matches!(
            claims2
                .claim(&env, &paths(&["a/b"]), &attached("two"), Wait::Forever)
                .unwrap(),
            Claimed::All(_)
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(held);
    assert!(waiter.join().unwrap());
}

#[test]
fn expired_claims_are_shown_dead_not_matched_and_reaped_by_the_next_claimant() {
    let (_dir, env, claims) = setup();
    claims
        .claim(
            &env,
            &paths(&["a"]),
            &detached("gone", Duration::ZERO),
            Wait::No,
        )
        .unwrap();
    let status = claims.status(&env).unwrap();
    assert_eq!(status.len(), 1);
    assert!(!status[0].alive);
    assert!(claims.who(&env, "a").unwrap().is_empty());
    // Looking reaps nothing; claiming does.
    assert_eq!(claim_files(&claims), ["a.claim"]);
    let got = claims
        .claim(&env, &paths(&["b"]), &attached("next"), Wait::No)
        .unwrap();
    assert!(matches!(got, Claimed::All(_)));
    assert_eq!(claim_files(&claims), ["b.claim"]);
}

#[test]
fn a_claim_of_another_boot_is_dead_and_one_of_another_host_is_kept() {
    let (_dir, env, claims) = setup();
    let expiry = far_future(&env);
    let old_boot = ClaimRecord {
        boot_id: "an-earlier-boot".into(),
        ..record(&env, "rebooted", "old", expiry)
    };
    let elsewhere = ClaimRecord {
        host: "another-host".into(),
        boot_id: "its-boot".into(),
        // Already past on this boot's clock: meaningless there.
        expires_boot_ms: Some(0),
        ..record(&env, "remote", "far", None)
    };
    plant(&claims, &old_boot);
    let remote_file = plant(&claims, &elsewhere);
    let status = claims.status(&env).unwrap();
    let alive = |p: &str| status.iter().find(|c| c.record.path == p).unwrap().alive;
    assert!(!alive("rebooted"));
    assert!(alive("remote"));
    assert!(matches!(
        claims
            .claim(&env, &paths(&["remote/x"]), &attached("me"), Wait::No)
            .unwrap(),
        Claimed::Conflict { .. }
    ));
    assert!(matches!(
        claims
            .claim(&env, &paths(&["rebooted"]), &attached("me"), Wait::No)
            .unwrap(),
        Claimed::All(_)
    ));
    assert!(remote_file.exists(), "another host's claim is never reaped");
}

#[test]
fn a_claim_left_torn_by_a_crash_is_reaped_once_nobody_holds_it() {
    let (_dir, env, claims) = setup();
    fs::create_dir_all(&claims.dir).unwrap();
    // An empty file and a torn record under claim names: what a crash
    // between creating and writing leaves.
    fs::write(claims.dir.join("torn.claim"), b"").unwrap();
    fs::write(claims.dir.join("half.claim"), b"{\"baton\":1,\"pa").unwrap();
    let got = claims
        .claim(&env, &paths(&["x"]), &attached("me"), Wait::No)
        .unwrap();
    assert!(matches!(got, Claimed::All(_)));
    assert_eq!(claim_files(&claims), ["x.claim"]);
}

#[test]
fn what_is_not_a_claim_in_the_directory_is_left_alone() {
    let (dir, env, claims) = setup();
    fs::create_dir_all(&claims.dir).unwrap();
    let target = dir.path().join("precious.txt");
    fs::write(&target, "the user's").unwrap();
    symlink(&target, claims.dir.join("link.claim")).unwrap();
    fs::create_dir(claims.dir.join("dir.claim")).unwrap();
    fs::write(claims.dir.join("notes.claim"), "a user's notes").unwrap();
    fs::write(claims.dir.join("README"), "not a claim name").unwrap();
    // Larger than any record baton writes: not read whole, not a claim.
    let big = [b"{\"baton\":1,".as_slice(), &vec![b' '; 200_000]].concat();
    fs::write(claims.dir.join("big.claim"), &big).unwrap();
    assert!(claims.status(&env).unwrap().is_empty());
    let got = claims
        .claim(&env, &paths(&["y"]), &attached("me"), Wait::No)
        .unwrap();
    assert!(matches!(got, Claimed::All(_)));
    assert_eq!(fs::read_to_string(&target).unwrap(), "the user's");
    assert!(fs::symlink_metadata(claims.dir.join("link.claim")).is_ok());
    assert!(claims.dir.join("dir.claim").is_dir());
    assert_eq!(
        fs::read_to_string(claims.dir.join("notes.claim")).unwrap(),
        "a user's notes"
    );
    assert_eq!(fs::read(claims.dir.join("big.claim")).unwrap(), big);
    // Claiming the very name a symlink sits at is refused, not followed.
    let link_path = "link";
    assert_eq!(claims.file_for(link_path), claims.dir.join("link.claim"));
    match claims.claim(&env, &paths(&[link_path]), &attached("me"), Wait::No) {
        Err(ClaimError::Foreign { why, .. }) => assert!(why.contains("symbolic link"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), "the user's");
}

#[test]
fn no_claims_directory_means_no_claims_and_a_file_there_is_an_error() {
    let (dir, env, claims) = setup();
    assert!(claims.status(&env).unwrap().is_empty());
    assert!(claims.who(&env, "a").unwrap().is_empty());
    let blocked = Claims::new(dir.path().join("file"), dir.path());
    fs::write(dir.path().join("file"), "not a directory").unwrap();
    assert!(blocked.status(&env).is_err());
}

#[test]
fn two_paths_under_one_file_name_are_refused_not_merged() {
    let (_dir, env, claims) = setup();
    // Paths this long are named by a hash; plant another path's live
    // claim under the name this one hashes to.
    let long = "deep/".repeat(60) + "file.rs";
    let file = claims.file_for(&long);
    assert!(file.file_name().unwrap().len() < 40);
    let other = record(&env, "elsewhere", "intruder", None);
    fs::create_dir_all(&claims.dir).unwrap();
    let mut bytes = serde_json::to_vec(&other).unwrap();
    bytes.push(b'\n');
    fs::write(&file, bytes).unwrap();
    let keep = fs::File::open(&file).unwrap();
    keep.lock().unwrap();
    match claims.claim(&env, &[long], &attached("me"), Wait::No) {
        Err(ClaimError::NotYours { holder, task, .. }) => {
            assert_eq!(holder, "intruder");
            assert!(task.contains("elsewhere"), "{task}");
        }
        other => panic!("{other:?}"),
    }
    let still: ClaimRecord = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(still.id, "intruder");
}

#[test]
fn release_removes_ones_own_claims_and_refuses_anothers_unless_forced() {
    let (_dir, env, claims) = setup();
    let ttl = Duration::from_secs(600);
    claims
        .claim(&env, &paths(&["a", "b"]), &detached("me", ttl), Wait::No)
        .unwrap();
    claims
        .claim(&env, &paths(&["c"]), &detached("you", ttl), Wait::No)
        .unwrap();
    // One path of mine.
    let gone = claims
        .release(&env, "me", Some(&paths(&["a"])), false)
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].path, "a");
    assert_eq!(claim_files(&claims), ["b.claim", "c.claim"]);
    // Another's live claim, asked for by path.
    match claims.release(&env, "me", Some(&paths(&["c"])), false) {
        Err(ClaimError::NotYours { holder, .. }) => assert_eq!(holder, "you"),
        other => panic!("{other:?}"),
    }
    assert_eq!(claim_files(&claims), ["b.claim", "c.claim"]);
    // All of mine: not yours.
    let gone = claims.release(&env, "me", None, false).unwrap();
    assert_eq!(
        gone.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(claim_files(&claims), ["c.claim"]);
    // Forced.
    let gone = claims
        .release(&env, "me", Some(&paths(&["c"])), true)
        .unwrap();
    assert_eq!(gone[0].id, "you");
    assert!(claim_files(&claims).is_empty());
}
