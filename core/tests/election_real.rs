//! Kernel-mode elections on the real filesystem, as a library user meets
//! them: ids, the directory's mode, members alive exactly while held,
//! terms with increasing epochs, what `status` reports, and what an
//! election directory may hold that is not baton's.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::time::Duration;

use baton_core::election::{
    self, Election, ElectionError, ElectionMode, MAX_ID_LEN, check_id, distrust, sanitize_id,
};
use baton_core::env::Processes;
use baton_core::env::real::RealEnv;
use baton_core::lock::Wait;
use baton_core::record::{OwnerRecord, Token};

fn setup() -> (tempfile::TempDir, RealEnv, Election) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let election = Election::new(dir.path().join("election"));
    (dir, env, election)
}

/// The owner record a killed instance `id` left: a pid that is not alive.
fn dead_record(env: &RealEnv, id: &str) -> Vec<u8> {
    let mut who = env.identity().clone();
    who.pid = 4_194_999;
    OwnerRecord::new(&who, id, std::time::SystemTime::now(), Token::random(env)).to_bytes()
}

#[test]
fn ids_that_would_escape_or_hide_are_refused_and_host_names_are_made_safe() {
    for good in ["agent-1", "a", "A.b_c:d@e+f-g", &"x".repeat(MAX_ID_LEN)] {
        check_id(good).unwrap();
    }
    for (bad, why) in [
        ("", "empty"),
        (&"x".repeat(MAX_ID_LEN + 1), "longer"),
        (".hidden", "starts with"),
        ("-flag", "starts with"),
        ("../up", "starts with"),
        ("a/b", "only letters"),
        ("a b", "only letters"),
        ("new\nline", "only letters"),
    ] {
        match check_id(bad) {
            Err(ElectionError::BadId { why: w, .. }) => assert!(w.contains(why), "{bad:?}: {w}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(sanitize_id("my host.local"), "my_host.local");
    assert_eq!(sanitize_id("héllo/x"), "h_llo_x");
    assert_eq!(sanitize_id(""), "_");
    assert_eq!(sanitize_id(".x"), "_.x");
    assert_eq!(sanitize_id("-x"), "_-x");
    let long = sanitize_id(&format!("-{}", "y".repeat(300)));
    assert_eq!(long.len(), MAX_ID_LEN);
    for id in ["my host.local", "", ".x", "-x", &"z".repeat(300)] {
        check_id(&sanitize_id(id)).unwrap();
    }
}

#[test]
fn the_files_of_an_election_are_where_the_protocol_says() {
    let e = Election::new("/x/el");
    assert_eq!(e.members(), std::path::Path::new("/x/el/members"));
    assert_eq!(e.leader(), std::path::Path::new("/x/el/leader"));
    assert_eq!(e.record(), std::path::Path::new("/x/el/leader.json"));
    assert_eq!(
        e.member_file("a-1"),
        std::path::Path::new("/x/el/members/a-1.member")
    );
    assert_eq!(e.mode_file(), std::path::Path::new("/x/el/mode"));
    assert_eq!(ElectionMode::Kernel.to_string(), "kernel");
    assert_eq!(ElectionMode::Lease.to_string(), "lease");
}

#[test]
fn a_directory_keeps_the_mode_it_was_first_given() {
    let (_dir, env, election) = setup();
    assert_eq!(election.recorded_mode(&env).unwrap(), None);
    election.prepare(&env, ElectionMode::Kernel).unwrap();
    assert_eq!(
        election.recorded_mode(&env).unwrap(),
        Some(ElectionMode::Kernel)
    );
    election.prepare(&env, ElectionMode::Kernel).unwrap();
    match election.prepare(&env, ElectionMode::Lease) {
        Err(ElectionError::ModeMismatch {
            recorded, wanted, ..
        }) => {
            assert_eq!(recorded, ElectionMode::Kernel);
            assert_eq!(wanted, ElectionMode::Lease);
        }
        other => panic!("{other:?}"),
    }
    // A directory from before modes were recorded keeps what its files
    // show: a leader record means kernel mode, a lease directory lease.
    let (_d2, env, old_kernel) = setup();
    fs::create_dir_all(&old_kernel.dir).unwrap();
    fs::write(old_kernel.record(), b"{\"epoch\":3}").unwrap();
    assert!(matches!(
        old_kernel.prepare(&env, ElectionMode::Lease),
        Err(ElectionError::ModeMismatch { .. })
    ));
    let (_d3, env, old_lease) = setup();
    fs::create_dir_all(old_lease.dir.join("lease")).unwrap();
    assert!(matches!(
        old_lease.prepare(&env, ElectionMode::Kernel),
        Err(ElectionError::ModeMismatch { .. })
    ));
    old_lease.prepare(&env, ElectionMode::Lease).unwrap();
    // A mode record that says something else is an error naming it.
    let (_d4, env, garbled) = setup();
    fs::create_dir_all(&garbled.dir).unwrap();
    fs::write(garbled.mode_file(), b"{\"baton\":1,\"mode\":\"other\"}\n").unwrap();
    assert!(matches!(
        garbled.recorded_mode(&env),
        Err(ElectionError::BadRecord { .. })
    ));
}

#[test]
fn a_member_is_alive_while_held_its_id_is_its_own_and_it_leaves_no_file() {
    let (_dir, env, election) = setup();
    let a = election::join(&env, &election, "a").unwrap();
    assert!(election.member_file("a").exists());
    match election::join(&env, &election, "a") {
        Err(ElectionError::IdInUse { id, .. }) => assert_eq!(id, "a"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        election::join(&env, &election, "../a"),
        Err(ElectionError::BadId { .. })
    ));
    let st = election::status(&env, &election).unwrap();
    assert_eq!(st.members.len(), 1);
    assert!(st.members[0].alive);
    assert_eq!(st.members[0].owner.as_ref().unwrap().instance, "a");
    drop(a);
    assert!(!election.member_file("a").exists());
    assert!(
        election::status(&env, &election)
            .unwrap()
            .members
            .is_empty()
    );
    // The id is free again.
    drop(election::join(&env, &election, "a").unwrap());
}

#[test]
fn a_dead_members_file_is_reaped_when_its_id_joins_again() {
    let (_dir, env, election) = setup();
    election.prepare(&env, ElectionMode::Kernel).unwrap();
    // What a killed instance leaves: its record, nobody holding its lock.
    let record = dead_record(&env, "gone");
    fs::write(election.member_file("gone"), record).unwrap();
    let st = election::status(&env, &election).unwrap();
    assert_eq!(st.members.len(), 1);
    assert!(!st.members[0].alive);
    let again = election::join(&env, &election, "gone").unwrap();
    assert!(election::status(&env, &election).unwrap().members[0].alive);
    drop(again);
    // A user's file under a member name is never reaped.
    fs::write(election.member_file("notes"), "a user's notes").unwrap();
    assert!(matches!(
        election::join(&env, &election, "notes"),
        Err(ElectionError::Foreign { .. })
    ));
    assert_eq!(
        fs::read_to_string(election.member_file("notes")).unwrap(),
        "a user's notes"
    );
    // Nor a symlink, whose target stays as it was.
    let target = election.dir.join("target.txt");
    fs::write(&target, "kept").unwrap();
    symlink(&target, election.member_file("link")).unwrap();
    assert!(matches!(
        election::join(&env, &election, "link"),
        Err(ElectionError::Foreign { .. })
    ));
    assert_eq!(fs::read_to_string(&target).unwrap(), "kept");
    // `status` shows both as dead, not as errors.
    let st = election::status(&env, &election).unwrap();
    let ids: Vec<&str> = st.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["link", "notes"]);
    assert!(st.members.iter().all(|m| !m.alive));
    assert!(st.members[0].owner.is_err());
}

#[test]
fn terms_follow_each_other_with_increasing_epochs_and_status_shows_the_holder() {
    let (_dir, env, election) = setup();
    let st = election::status(&env, &election).unwrap();
    assert!(st.leader.is_none() && !st.primary_alive && st.members.is_empty());
    let a = election::join(&env, &election, "a").unwrap();
    let b = election::join(&env, &election, "b").unwrap();
    let term = election::campaign(&env, &election, &a, Wait::No, &mut |_| {})
        .unwrap()
        .expect("nobody else is primary");
    assert_eq!(term.epoch(), 1);
    assert_eq!(term.record.id, "a");
    let st = election::status(&env, &election).unwrap();
    assert!(st.primary_alive);
    assert_eq!(st.leader.as_ref().unwrap().epoch, 1);
    assert_eq!(st.leader.as_ref().unwrap().id, "a");
    // b cannot be primary meanwhile, waiting or not.
    assert!(
        election::campaign(&env, &election, &b, Wait::No, &mut |_| {})
            .unwrap()
            .is_none()
    );
    assert!(
        election::campaign(
            &env,
            &election,
            &b,
            Wait::For(Duration::from_millis(50)),
            &mut |_| {}
        )
        .unwrap()
        .is_none()
    );
    // a prefers nobody (it is the smallest); b would hand over to a.
    assert_eq!(election::preferred(&env, &election, "a").unwrap(), None);
    assert_eq!(
        election::preferred(&env, &election, "b")
            .unwrap()
            .as_deref(),
        Some("a")
    );
    term.step_down().unwrap();
    assert!(!election::status(&env, &election).unwrap().primary_alive);
    let term = election::campaign(&env, &election, &b, Wait::No, &mut |_| {})
        .unwrap()
        .expect("a stepped down");
    assert_eq!(term.epoch(), 2);
    assert_eq!(election.leader_record(&env).unwrap().unwrap().id, "b");
    drop(term);
    // A planted maximum epoch cannot be followed: refused, not wrapped.
    fs::write(
        election.record(),
        format!(
            "{{\"epoch\":{},\"id\":\"x\",\"pid\":1,\"host\":\"h\",\"elected_at_ms\":0}}\n",
            u64::MAX
        ),
    )
    .unwrap();
    assert!(matches!(
        election::campaign(&env, &election, &a, Wait::No, &mut |_| {}),
        Err(ElectionError::BadRecord { .. })
    ));
    // A leader record that is not one names the file.
    fs::write(election.record(), "not json").unwrap();
    assert!(matches!(
        election.leader_record(&env),
        Err(ElectionError::BadRecord { .. })
    ));
}

#[test]
fn foreign_files_at_the_elections_names_are_refused_not_followed() {
    let (dir, env, election) = setup();
    election.prepare(&env, ElectionMode::Kernel).unwrap();
    let target = dir.path().join("precious");
    fs::write(&target, "the user's").unwrap();
    symlink(&target, election.record()).unwrap();
    assert!(matches!(
        election.leader_record(&env),
        Err(ElectionError::Foreign { .. })
    ));
    assert!(matches!(
        election::status(&env, &election),
        Err(ElectionError::Foreign { .. })
    ));
    fs::remove_file(election.record()).unwrap();
    symlink(&target, election.dir.join("leader.baton.lock")).unwrap();
    assert!(matches!(
        election::status(&env, &election),
        Err(ElectionError::Foreign { .. })
    ));
    assert_eq!(fs::read_to_string(&target).unwrap(), "the user's");
    // No election directory yet: nothing to report, nothing made.
    let (_d2, env, fresh) = setup();
    let st = election::status(&env, &fresh).unwrap();
    assert!(st.leader.is_none() && st.members.is_empty());
    assert!(!fresh.dir.exists());
    // A file where the members directory goes is an error.
    fs::create_dir_all(&fresh.dir).unwrap();
    fs::write(fresh.members(), "not a directory").unwrap();
    assert!(election::status(&env, &fresh).is_err());
}

#[test]
fn a_directory_anyone_may_write_or_another_user_owns_is_distrusted() {
    let (dir, env, _election) = setup();
    let me = 4242;
    assert_eq!(distrust(&env, &dir.path().join("none"), me).unwrap(), None);
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let warning = distrust(&env, &open, me).unwrap().unwrap();
    assert!(warning.contains("writable by every user"), "{warning}");
    // Sticky, as /tmp: nobody may replace another's files.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    let owner = fs::metadata(&open).unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&owner);
    assert_eq!(distrust(&env, &open, uid).unwrap(), None);
    // Owned by someone else (unless that is root, who may anyway).
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    let other = distrust(&env, &open, uid + 1).unwrap();
    if uid == 0 {
        assert_eq!(other, None);
    } else {
        assert!(other.unwrap().contains("owned by user"));
    }
    assert_eq!(distrust(&env, &open, uid).unwrap(), None);
    if uid == 0 {
        // Root can give it away and see the warning too.
        std::os::unix::fs::chown(&open, Some(1234), None).unwrap();
        let warning = distrust(&env, &open, 4242).unwrap().unwrap();
        assert!(warning.contains("owned by user 1234"), "{warning}");
        assert_eq!(distrust(&env, &open, 1234).unwrap(), None);
    }
    // What cannot be looked at is an error.
    let file = dir.path().join("f");
    fs::write(&file, "x").unwrap();
    assert!(distrust(&env, &file.join("below"), uid).is_err());
}

#[test]
fn reap_removes_exactly_the_dead_members_and_a_dry_run_only_says_so() {
    let (_dir, env, election) = setup();
    assert!(election::reap(&env, &election, false).unwrap().is_empty());
    let live = election::join(&env, &election, "live").unwrap();
    let record = dead_record(&env, "dead");
    fs::write(election.member_file("dead"), record).unwrap();
    fs::write(election.member_file("notes"), "a user's notes").unwrap();
    fs::write(election.members().join("README"), "not a member name").unwrap();
    let would = election::reap(&env, &election, true).unwrap();
    assert_eq!(would.len(), 1);
    assert_eq!(would[0].path, election.member_file("dead"));
    assert_eq!(would[0].owner.as_ref().unwrap().instance, "dead");
    assert!(
        election.member_file("dead").exists(),
        "a dry run removed it"
    );
    let done = election::reap(&env, &election, false).unwrap();
    assert_eq!(done, would);
    assert!(!election.member_file("dead").exists());
    assert!(election.member_file("live").exists());
    assert!(election.member_file("notes").exists());
    assert!(election.members().join("README").exists());
    assert!(election::reap(&env, &election, false).unwrap().is_empty());
    drop(live);
    // A file where the members directory goes is an error.
    let (_d2, env, blocked) = setup();
    fs::create_dir_all(&blocked.dir).unwrap();
    fs::write(blocked.members(), "not a directory").unwrap();
    assert!(election::reap(&env, &blocked, false).is_err());
}
