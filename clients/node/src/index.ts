// baton-client: baton's locks, elections, state updates, claims, scoped
// commits and transactions for Node programs, without hand-parsing a child
// process's JSON lines.
//
// Every call runs the `baton` binary (found through the BATON environment
// variable, then PATH) and turns its exit code and its one-line error into
// a typed BatonError. Nothing here re-implements a protocol: the binary
// does the coordination, so Node users get exactly what the simulator and
// the models check.

import { ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";

/** baton's exit codes (see the README). */
export const Exit = {
  ok: 0,
  error: 1,
  usage: 2,
  unavailable: 75,
  cannotExecute: 126,
  notFound: 127,
} as const;

/** A baton command that failed: its exit code and its one-line message. */
export class BatonError extends Error {
  constructor(
    message: string,
    /** baton's exit code: 1 error, 2 usage, 75 not obtained in time. */
    readonly exitCode: number | null,
    /** The command line that failed, for messages. */
    readonly args: readonly string[],
  ) {
    super(message);
    this.name = "BatonError";
  }

  /** The lock, claim or update was not obtained in time (exit 75). */
  get unavailable(): boolean {
    return this.exitCode === Exit.unavailable;
  }
}

/** The `baton` binary: `BATON`, else the first `baton` on PATH. */
export function findBaton(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BATON) {
    if (!existsSync(env.BATON)) {
      throw new BatonError(`BATON=${env.BATON}: no such file`, null, []);
    }
    return env.BATON;
  }
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, "baton");
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new BatonError(
    "cannot find baton: set BATON to its path, or put it on PATH",
    null,
    [],
  );
}

/** Options every call takes. */
export interface CallOptions {
  /** The `baton` binary (default: `findBaton()`). */
  baton?: string;
  /** Where to run (default: the current directory). */
  cwd?: string;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: CallOptions = {}, input?: string): Promise<Ran> {
  const baton = opts.baton ?? findBaton();
  return new Promise((resolve, reject) => {
    const child = spawn(baton, args, {
      cwd: opts.cwd,
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    if (child.stdin) {
      quietPipe(child);
      child.stdin.end(input);
    }
  });
}

/** A baton that exits before reading its stdin closes the pipe: writing to
 *  it then fails with EPIPE, which its exit status already explains. */
function quietPipe(child: ChildProcess): void {
  child.stdin?.on("error", () => {});
}

/** Follows a long-running baton's `--json` events on stderr: `reached`
 *  resolves true once it reports `event`, false if it exits first; its
 *  stderr so far is kept for the error. */
function watchFor(child: ChildProcess, event: string) {
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  let text = "";
  const reached = new Promise<boolean>((resolve) => {
    createInterface({ input: child.stderr! }).on("line", (line) => {
      text += `${line}\n`;
      try {
        if (JSON.parse(line).event === event) resolve(true);
      } catch {
        // An error or warning line, not an event: reported when baton exits.
      }
    });
    void exited.then(() => resolve(false));
  });
  return { exited, reached, stderr: () => text };
}

/** The last `baton: ...` line of stderr, or a description of the exit. */
function failure(r: Ran, args: string[]): BatonError {
  const line = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("baton: "))
    .pop();
  return new BatonError(line ?? `baton ${args[0]} exited with ${r.code}`, r.code, args);
}

async function runOk(args: string[], opts: CallOptions = {}): Promise<string> {
  const r = await run(args, opts);
  if (r.code !== 0) throw failure(r, args);
  return r.stdout;
}

// ----- locks -----------------------------------------------------------

export interface LockOptions extends CallOptions {
  /** Seconds to wait for the lock; 0 fails at once; default: for ever. */
  wait?: number;
  mode?: "auto" | "kernel" | "file";
}

/**
 * Runs `fn` holding `file`'s lock (`FILE.baton.lock`), and releases it when
 * `fn` settles. Throws a BatonError with `unavailable` when the lock was not
 * obtained within `wait` seconds.
 */
export async function withLock<T>(
  file: string,
  fn: () => Promise<T> | T,
  opts: LockOptions = {},
): Promise<T> {
  const args = ["--json", "lock"];
  if (opts.wait !== undefined) args.push("-w", String(opts.wait));
  if (opts.mode) args.push("--mode", opts.mode);
  // The command baton runs holds the lock until its stdin (ours) closes.
  args.push(file, "--", "sh", "-c", "read _ || true");
  const child = spawn(opts.baton ?? findBaton(), args, {
    cwd: opts.cwd,
    stdio: ["pipe", "ignore", "pipe"],
  });
  quietPipe(child);
  const { exited, reached, stderr } = watchFor(child, "acquired");
  if (!(await reached)) {
    const code = await exited;
    if (code === Exit.unavailable) {
      throw new BatonError(`baton: lock ${file}: not obtained in time`, code, args);
    }
    throw failure({ code, stdout: "", stderr: stderr() }, args);
  }
  try {
    return await fn();
  } finally {
    child.stdin!.end();
    await exited;
  }
}

// ----- state -----------------------------------------------------------

export interface StateOptions extends LockOptions {
  /** Compare-and-swap: `fn` may run again if another writer got there first. */
  cas?: boolean;
  /** With `cas`: how many times `fn` may run (default 20). */
  attempts?: number;
}

/** `file`'s JSON document (`null` when the file does not exist). */
export async function getState<T = unknown>(file: string, opts: CallOptions = {}): Promise<T> {
  return JSON.parse(await runOk(["state", "get", file], opts)) as T;
}

/**
 * Replaces `file`'s JSON document with `fn(old)`, atomically; concurrent
 * updates never lose each other (locked, or `cas`). If `fn` throws, the
 * file is untouched and the error is rethrown.
 */
export async function updateState<T = unknown>(
  file: string,
  fn: (old: T) => T | Promise<T>,
  opts: StateOptions = {},
): Promise<T> {
  // `--stdio`: baton offers the old document as a JSON line on its stdout
  // (again after a lost compare-and-swap) and reads the new one from its
  // stdin; closing stdin instead leaves the file untouched.
  const args = ["state", "update"];
  if (opts.wait !== undefined) args.push("-w", String(opts.wait));
  if (opts.mode) args.push("--mode", opts.mode);
  if (opts.cas) args.push("--cas", "--attempts", String(opts.attempts ?? 20));
  args.push("--stdio", file);
  const child = spawn(opts.baton ?? findBaton(), args, {
    cwd: opts.cwd,
    stdio: ["pipe", "pipe", "pipe"],
  });
  quietPipe(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  let result: T | undefined;
  let thrown: { error: unknown } | null = null;
  // One offer at a time: baton waits for each answer before the next.
  let turn = Promise.resolve();
  createInterface({ input: child.stdout! }).on("line", (line) => {
    turn = turn.then(async () => {
      const offer = JSON.parse(line) as { event: string; document: T };
      if (offer.event !== "old" || thrown) return;
      try {
        result = await fn(offer.document);
        child.stdin!.write(`${JSON.stringify(result)}\n`);
      } catch (error) {
        thrown = { error };
        child.stdin!.end();
      }
    });
  });
  const code = await exited;
  await turn;
  if (thrown) throw (thrown as { error: unknown }).error;
  if (code !== 0) throw failure({ code, stdout: "", stderr }, args);
  return result as T;
}

// ----- claims ----------------------------------------------------------

export interface ClaimOptions extends CallOptions {
  /** This instance's id (default: BATON_ID). Claims are released by it. */
  id?: string;
  /** What this instance is doing, shown to others. */
  task?: string;
  /** Seconds the claims live unless claimed again (default 300). */
  ttl?: number;
  /** Seconds to wait for conflicting claims to go (default: do not wait). */
  wait?: number;
  /** The claims directory (default: .baton/claims at the repository root). */
  dir?: string;
}

/** One live claim, as `who` and `status` show it. */
export interface Claim {
  path: string;
  id: string;
  task: string;
  pid: number;
  host: string;
  claimed_at_ms: number;
  detached: boolean;
}

function claimArgs(opts: ClaimOptions): string[] {
  const args: string[] = [];
  if (opts.dir) args.push("--dir", opts.dir);
  if (opts.id) args.push("--id", opts.id);
  return args;
}

/**
 * Claims every path for this instance, all or nothing. Throws a BatonError
 * with `unavailable` (naming the holder) if any is claimed by another.
 */
export async function claim(paths: string[], opts: ClaimOptions = {}): Promise<void> {
  const args = ["claim", ...claimArgs(opts)];
  if (opts.task !== undefined) args.push("--task", opts.task);
  if (opts.ttl !== undefined) args.push("--ttl", String(opts.ttl));
  if (opts.wait !== undefined) args.push("-w", String(opts.wait));
  await runOk([...args, ...paths], opts);
}

/** Releases this instance's claims on `paths` (all of them when omitted). */
export async function release(paths: string[] = [], opts: ClaimOptions = {}): Promise<void> {
  await runOk(["release", ...claimArgs(opts), ...paths], opts);
}

/** Who claims `path` (besides this instance): empty when it is free. */
export async function who(path: string, opts: ClaimOptions = {}): Promise<Claim[]> {
  const args = ["--json", "who", ...claimArgs(opts), path];
  const r = await run(args, opts);
  if (r.code !== 0 && r.code !== Exit.unavailable) throw failure(r, args);
  return (JSON.parse(r.stdout) as { claims: Claim[] }).claims;
}

// ----- commits ---------------------------------------------------------

/** One path a commit changed. */
export interface CommitChange {
  path: string;
  status: "added" | "modified" | "deleted";
}

/** A published commit, as `baton commit --json` reports it. */
export interface CommitResult {
  /** The new commit's id. */
  commit: string;
  /** The commit it was made on (null for the first commit). */
  parent: string | null;
  /** The ref moved: `refs/heads/...`, or `HEAD` when detached. */
  ref: string;
  changes: CommitChange[];
  /** Compare-and-swap rounds it took (1 when nobody else committed). */
  attempts: number;
  /** "refreshed", or "stale" when git's index.lock kept the index behind. */
  index: string;
  /** Changed paths were checked to be within those given, before publishing. */
  validated: boolean;
  /** How long baton took, in milliseconds. */
  ms: number;
}

export interface CommitOptions extends CallOptions {
  /** Commit even if the paths already match HEAD. */
  allowEmpty?: boolean;
  /** Skip git's commit hooks. */
  noVerify?: boolean;
  /** Commit onto a detached HEAD (refused otherwise). */
  detachOk?: boolean;
}

function commitFlags(opts: CommitOptions): string[] {
  const args: string[] = [];
  if (opts.cwd) args.push("-C", opts.cwd);
  if (opts.noVerify) args.push("--no-verify");
  if (opts.detachOk) args.push("--detach-ok");
  return args;
}

function committed(stdout: string): CommitResult | null {
  for (const line of stdout.split("\n")) {
    if (!line) continue;
    const { event, ...result } = JSON.parse(line) as CommitResult & { event: string };
    if (event === "committed") return result;
  }
  return null;
}

/**
 * Commits exactly `paths` (relative to `cwd`) onto the current branch,
 * whatever else is staged, with no global lock. Throws a BatonError: exit 1
 * for nothing to commit or a refusal (its message says which), exit 75 if
 * other commits kept landing first.
 */
export async function commit(
  paths: string[],
  message: string,
  opts: CommitOptions = {},
): Promise<CommitResult> {
  const args = ["--json", "commit", ...commitFlags(opts), "-m", message];
  if (opts.allowEmpty) args.push("--allow-empty");
  args.push("--", ...paths);
  const result = committed(await runOk(args, { ...opts, cwd: undefined }));
  if (result === null) throw new BatonError("baton: commit: no commit reported", null, args);
  return result;
}

export interface TxnOptions extends CommitOptions {
  /** Seconds to wait for an overlapping transaction (default: do not wait). */
  wait?: number;
  /** This instance's id (default: BATON_ID). */
  id?: string;
  /** Fail, committing nothing, if `fn` changed files outside the scope. */
  strict?: boolean;
}

/**
 * A transaction: claims `scope` (all or nothing; overlapping scopes wait or
 * fail with `unavailable`), checks it matches HEAD, runs `fn` (which edits
 * the scope), then commits exactly the scope with `message`. Resolves with
 * the commit, or null when `fn` changed nothing. If `fn` throws, nothing is
 * committed, its edits stay in the work tree under the transaction's
 * journal (`baton txn --recover`), and its error is rethrown.
 */
export async function txn<T = void>(
  scope: string[],
  message: string,
  fn: () => Promise<T> | T,
  opts: TxnOptions = {},
): Promise<CommitResult | null> {
  const args = ["--json", "txn", ...commitFlags(opts)];
  if (opts.wait !== undefined) args.push("-w", String(opts.wait));
  if (opts.id) args.push("--id", opts.id);
  if (opts.strict) args.push("--strict");
  args.push("-m", message, "--scope", ...scope);
  // The command baton runs is the caller's fn: it waits for our verdict on
  // its stdin, and fails (so nothing is committed) unless fn succeeded.
  args.push("--", "sh", "-c", 'read verdict; test "$verdict" = ok');
  const child = spawn(opts.baton ?? findBaton(), args, {
    stdio: ["pipe", "pipe", "pipe"],
  });
  quietPipe(child);
  let stdout = "";
  child.stdout!.on("data", (d) => (stdout += d));
  const { exited, reached, stderr } = watchFor(child, "began");
  if (!(await reached)) {
    const code = await exited;
    throw failure({ code, stdout, stderr: stderr() }, args);
  }
  let thrown: { error: unknown } | null = null;
  try {
    await fn();
  } catch (error) {
    thrown = { error };
  }
  child.stdin!.end(thrown ? "failed\n" : "ok\n");
  const code = await exited;
  if (thrown) throw thrown.error;
  if (code !== 0) throw failure({ code, stdout, stderr: stderr() }, args);
  return committed(stdout);
}

// ----- elections -------------------------------------------------------

export interface ElectOptions extends CallOptions {
  /** The election's directory (default: .baton/election). */
  dir?: string;
  /** This instance's id. */
  id?: string;
  /** Called when this instance becomes primary. `term` aborts when the
   *  term ends (lost, resigned, or baton died): stop acting then. */
  onElected?: (epoch: number, term: AbortSignal) => void;
  /** Called when a term ends without this instance resigning. */
  onLost?: (epoch: number) => void;
  /** Aborting it resigns. */
  signal?: AbortSignal;
  /** "lease" for network filesystems (see the README). */
  mode?: "kernel" | "lease";
  /** Lease mode: the lease in seconds. */
  ttl?: number;
}

/** What `baton status --json` says of an election and the claims. */
export interface Status {
  mode?: string | null;
  primary?: { id: string; epoch: number } | null;
  epoch?: number | null;
  members?: { id: string; alive: boolean }[];
  claims: (Claim & { alive: boolean })[];
}

/** A campaign: primary or standby until resigned. */
export interface Election {
  /** The epoch of the term held now, or null on standby. */
  readonly epoch: number | null;
  /** Steps down (if primary) and leaves the election. */
  resign(): Promise<void>;
  /** The election as `baton status` shows it. */
  status(): Promise<Status>;
  /** The `baton elect` process (to test what its death does). */
  readonly process: ChildProcess;
}

/**
 * Joins the election in `dir` and campaigns. Resolves at once with a
 * handle; `onElected` runs when this instance becomes primary, with an
 * AbortSignal that aborts the moment the term ends, however it ends.
 */
export function elect(opts: ElectOptions = {}): Election {
  const args = ["elect"];
  if (opts.dir) args.push("--dir", opts.dir);
  if (opts.id) args.push("--id", opts.id);
  if (opts.mode) args.push("--mode", opts.mode);
  if (opts.ttl !== undefined) args.push("--ttl", String(opts.ttl));
  const child = spawn(opts.baton ?? findBaton(), args, {
    cwd: opts.cwd,
    stdio: ["pipe", "pipe", "inherit"],
  });
  quietPipe(child);
  let term: AbortController | null = null;
  let epoch: number | null = null;
  let resigning = false;
  const endTerm = (lost: boolean) => {
    if (term === null) return;
    const ended = epoch;
    term.abort();
    term = null;
    epoch = null;
    if (lost && ended !== null) opts.onLost?.(ended);
  };
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const event = JSON.parse(line) as { event: string; epoch?: number };
    if (event.event === "elected" && !resigning) {
      term = new AbortController();
      epoch = event.epoch ?? null;
      opts.onElected?.(event.epoch ?? 0, term.signal);
    } else if (event.event === "lost") {
      endTerm(true);
    } else if (event.event === "stepped-down" || event.event === "handed-over") {
      endTerm(false);
    }
  });
  const exited = new Promise<void>((resolve) =>
    child.on("close", () => {
      // baton gone: whatever it held is gone too.
      endTerm(!resigning);
      resolve();
    }),
  );
  const resign = async () => {
    resigning = true;
    // Stop acting before the lock goes.
    endTerm(false);
    child.stdin!.end();
    await exited;
  };
  opts.signal?.addEventListener("abort", () => void resign(), { once: true });
  return {
    get epoch() {
      return epoch;
    },
    resign,
    status: () => status({ ...opts }),
    process: child,
  };
}

/** The election's primary and members, and every claim. */
export async function status(
  opts: CallOptions & { dir?: string; claims?: string } = {},
): Promise<Status> {
  const args = ["--json", "status"];
  if (opts.dir) args.push("--dir", opts.dir);
  if (opts.claims) args.push("--claims", opts.claims);
  return JSON.parse(await runOk(args, opts)) as Status;
}
