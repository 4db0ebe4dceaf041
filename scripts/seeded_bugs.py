#!/usr/bin/env python3
"""Seeded bugs: realistic one-line edits to baton's protocol code, each of
which the harness must catch. For each: apply the edit (an exact string,
found exactly once), build, run the check that must now fail, restore the
file. Exit 0 only when every bug tried was caught.

    scripts/seeded_bugs.py              # every seeded bug
    scripts/seeded_bugs.py --sample 2   # two, picked by today's date (CI)
    scripts/seeded_bugs.py --list
    scripts/seeded_bugs.py NAME...      # just these

cargo-mutants (scripts/mutants.sh) measures the same thing exhaustively and
slowly; this is the list of bugs that once survived it, or that the field
made, kept as a standing test that they stay caught.
"""

import argparse
import datetime
import pathlib
import random
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BATON = ROOT / "target" / "release" / "baton"


def sim(scenario, seeds=500, strategy="random"):
    return [
        str(BATON), "sim", "--scenario", scenario, "--seeds", str(seeds),
        "--strategy", strategy,
    ]


def test(package, target):
    """A test target of the workspace, built as the release binary is."""
    return ["cargo", "test", "-q", "--release", "-p", package, "--test", target]


# (name, file, original, seeded, check that must fail, what the bug is)
BUGS = [
    (
        "noop-flock-taken-at-its-word",
        "core/src/lock/file.rs",
        "Ok(true) => flock_excludes(env, lock, &file)?,",
        "Ok(true) => true,",
        sim("baton-lock-file-noopflock", 2000, "pct"),
        "on a filesystem whose flock grants everything, a waiter takes a "
        "live holder for one without its lock and reaps it",
    ),
    (
        "enolck-taken-for-no-flock",
        "core/src/lock/mod.rs",
        "matches!(e.raw_os_error(), Some(95) | Some(38))",
        "matches!(e.raw_os_error(), Some(37) | Some(95) | Some(38))",
        # Rare: an ENOLCK at publish, then the holder paused past the stale
        # threshold; pct first meets it near seed 1,800.
        sim("baton-lock-file", 4000, "pct"),
        "exclusive-file mode publishes a lock it could not flock (ENOLCK), "
        "so a waiter reaps its live holder",
    ),
    (
        "holder-died-never-reported",
        "core/src/lock/file.rs",
        "reaped |= matches!(found, Found::Reaped);",
        "reaped &= matches!(found, Found::Reaped);",
        sim("baton-lock-file"),
        "an acquire that reaped a dead holder's lock says nobody died",
    ),
    (
        "no-flock-fs-publish-fails",
        "core/src/lock/file.rs",
        "Err(e) if locks_unsupported(&e) => Ok(()),",
        "Err(e) if false => Ok(()),",
        sim("baton-lock-file-noflock"),
        "on a filesystem without flock, every acquire fails",
    ),
    (
        "no-flock-fs-waiter-fails",
        "core/src/lock/file.rs",
        "Err(e) if locks_unsupported(&e) || locks_unavailable(&e) => false,",
        "Err(e) if locks_unsupported(&e) && locks_unavailable(&e) => false,",
        sim("baton-lock-file-noflock"),
        "on a filesystem without flock, a waiter fails instead of waiting",
    ),
    (
        "check-then-unlink",
        "core/src/lock/file.rs",
        "    let aside = temp_sibling(lock, Token::random(env));\n",
        "    if ours.nlink > 0 {\n"
        "        env.remove_file(lock).map_err(IoFailure::at(\"remove\", lock))?;\n"
        "        return Ok(true);\n"
        "    }\n"
        "    let aside = temp_sibling(lock, Token::random(env));\n",
        sim("baton-lock-file-foreign", 2000),
        "release checks the name, then unlinks it: another tool's file put "
        "there in between is deleted",
    ),
    (
        "kernel-no-inode-recheck",
        "core/src/lock/kernel.rs",
        "        if names(env, lock, meta)?.is_some() {",
        "        if names(env, lock, meta).is_ok() {",
        sim("baton-lock-kernel-foreign", 2000),
        "kernel mode takes the flock of a sidecar someone removed meanwhile "
        "and holds it beside the holder of the new one",
    ),
    # Survivors of cargo-mutants (reports/mutants.md), each caught by a
    # targeted test since session 9.
    (
        "churn-never-sleeps",
        "core/src/lock/file.rs",
        "                polls_without_sleep += 1;",
        "                polls_without_sleep *= 1;",
        test("baton-sim", "lock_adversity"),
        "a waiter whose lock file churns polls on past its deadline, never "
        "sleeping",
    ),
    (
        "unreadable-lock-waited-out",
        "core/src/lock/file.rs",
        "Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Changed),",
        "Err(_) => return Ok(Found::Changed),",
        test("baton-sim", "lock_adversity"),
        "a lock file nobody may read is taken for one that vanished and "
        "waited on for ever",
    ),
    (
        "release-after-rm-fails",
        "core/src/lock/file.rs",
        "        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),",
        "        Err(e) if e.kind() == io::ErrorKind::NotFound && false => return Ok(false),",
        test("baton-sim", "lock_adversity"),
        "a release after a person removed the lock file fails instead of "
        "saying Lost",
    ),
    (
        "kernel-record-error-swallowed",
        "core/src/lock/kernel.rs",
        "Err(e) if matches!(e.raw_os_error(), Some(28) | Some(122)) => Ok(()),",
        "Err(_) => Ok(()),",
        test("baton-sim", "lock_adversity"),
        "kernel mode ignores an I/O error writing its owner record, not only "
        "a full disk",
    ),
    (
        "claim-past-unreadable-claim",
        "core/src/claims.rs",
        "                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,\n"
        "                // A symlink",
        "                Err(_) => continue,\n"
        "                // A symlink",
        test("baton-sim", "claims_faults"),
        "a claim file that could not be opened is skipped: a live claim "
        "there is overlapped",
    ),
    (
        "claim-wait-overruns",
        "core/src/claims.rs",
        "Wait::For(d) => Some(d - waited),",
        "Wait::For(d) => Some(d + waited),",
        test("baton-sim", "claims_wait"),
        "a bounded claim naps past its deadline",
    ),
]


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, **kw)


def try_bug(bug):
    name, rel, original, seeded, check, what = bug
    path = ROOT / rel
    text = path.read_text()
    if text.count(original) != 1:
        print(f"{name}: {rel}: the original text is not there exactly once")
        return False
    try:
        path.write_text(text.replace(original, seeded))
        build = run(["cargo", "build", "-q", "--release", "-p", "baton"])
        if build.returncode != 0:
            print(f"{name}: the seeded bug does not build")
            return False
        result = run(check, capture_output=True, text=True)
    finally:
        path.write_text(text)
    caught = result.returncode != 0
    print(f"{'caught' if caught else 'MISSED'}  {name}: {what}")
    if caught:
        line = next((l for l in result.stdout.splitlines() if "VIOLATION" in l), "")
        if line:
            print(f"        {line.strip()[:160]}")
    return caught


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sample", type=int, help="try this many, picked by date")
    p.add_argument("--list", action="store_true")
    p.add_argument("names", nargs="*", help="only these bugs")
    args = p.parse_args()
    bugs = [b for b in BUGS if not args.names or b[0] in args.names]
    if args.list:
        for name, rel, *_, what in bugs:
            print(f"{name:28} {rel:26} {what}")
        return 0
    if args.sample is not None:
        rng = random.Random(datetime.date.today().toordinal())
        bugs = rng.sample(bugs, min(args.sample, len(bugs)))
    missed = [b[0] for b in bugs if not try_bug(b)]
    # Leave the tree's own build behind, not the last seeded bug's.
    run(["cargo", "build", "-q", "--release", "-p", "baton"], check=True)
    if missed:
        print(f"missed: {', '.join(missed)}")
        return 1
    print(f"all {len(bugs)} seeded bugs caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
