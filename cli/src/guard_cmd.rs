//! `baton guard`: an edit guard for coding agents' pre-tool-use hooks.
//!
//! An agent runs it before each file edit with the tool call on stdin, in
//! the shape Claude Code's `PreToolUse` hooks send (`tool_name`,
//! `tool_input` with `file_path`, `notebook_path`, `path` or `paths`,
//! `cwd`, `session_id`). If another instance claims any of the files, the
//! edit is denied, naming the holder and its task; otherwise it is let
//! through, and with `--claim` the files are claimed for the caller first
//! (detached claims with a TTL, renewed by every later edit).
//!
//! Letting an edit through prints nothing: the guard only ever denies, so
//! the agent's own permission rules still decide everything else.
//! Errors (unreadable input, a broken claims directory) are one line on
//! stderr and exit 1, which Claude Code treats as "proceed": a guard that
//! cannot judge does not stop the agent's work, and says why.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use baton_core::claims::{ClaimError, Claimant, Claimed, Claims};
use baton_core::election;
use baton_core::env::Fs;
use baton_core::env::real::RealEnv;
use baton_core::hygiene;
use baton_core::lock::Wait;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::args;
use crate::claim_cmd::holder_text;
use crate::exit::Exit;
use crate::report;

/// Longest tool call read from stdin (an edit's content rides along).
const INPUT_LIMIT: u64 = 64 << 20;

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The claims directory (default: .baton/claims at the repository's
    /// top, shared with `baton claim` and `baton who`)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// This instance's id (default: $BATON_ID, else `session-` and the
    /// tool call's session_id)
    #[arg(long, value_name = "ID", value_parser = args::instance_id)]
    pub id: Option<String>,
    /// Claim the files for this instance when the edit is let through
    #[arg(long, conflicts_with = "release")]
    pub claim: bool,
    /// Release every claim of this instance instead (a session-end hook)
    #[arg(long)]
    pub release: bool,
    /// With --claim: how long the claims live unless another edit renews them
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = args::positive_secs)]
    pub ttl: Duration,
    /// With --claim: the task others see (default: the tool's name)
    #[arg(long, value_name = "TEXT")]
    pub task: Option<String>,
    /// How to answer: `claude` (a PreToolUse JSON decision on stdout, exit
    /// 0) or `exit` (the reason on stderr and exit 2 to deny)
    #[arg(long, value_enum, default_value = "claude")]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Claude,
    Exit,
}

/// The parts of a tool call the guard reads.
#[derive(Debug)]
struct Call {
    tool: String,
    paths: Vec<PathBuf>,
    cwd: Option<PathBuf>,
    session: Option<String>,
}

fn parse(input: &[u8]) -> anyhow::Result<Call> {
    let v: Value = serde_json::from_slice(input).context("the tool call on stdin is not JSON")?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let tool = text(&v, "tool_name").unwrap_or_default();
    let mut paths = Vec::new();
    if let Some(input) = v.get("tool_input") {
        for key in ["file_path", "notebook_path", "path"] {
            if let Some(p) = text(input, key) {
                paths.push(PathBuf::from(p));
            }
        }
        for key in ["paths", "file_paths"] {
            if let Some(list) = input.get(key).and_then(Value::as_array) {
                paths.extend(list.iter().filter_map(Value::as_str).map(PathBuf::from));
            }
        }
    }
    Ok(Call {
        tool,
        paths,
        cwd: text(&v, "cwd").map(PathBuf::from),
        session: text(&v, "session_id"),
    })
}

/// The caller's id: given, `BATON_ID`, or derived from the session.
fn caller_id(given: Option<String>, session: Option<&str>) -> anyhow::Result<Option<String>> {
    if let Some(id) = given {
        return Ok(Some(id));
    }
    if let Ok(id) = std::env::var("BATON_ID") {
        election::check_id(&id).map_err(|e| args::UsageError(format!("BATON_ID: {e}")))?;
        return Ok(Some(id));
    }
    Ok(session.map(|s| election::sanitize_id(&format!("session-{s}"))))
}

enum Verdict {
    Allow,
    Deny(String),
}

pub fn run(args: GuardArgs) -> anyhow::Result<Exit> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(INPUT_LIMIT + 1)
        .read_to_end(&mut input)
        .context("read the tool call from stdin")?;
    if input.len() as u64 > INPUT_LIMIT {
        anyhow::bail!("guard: the tool call on stdin is over {INPUT_LIMIT} bytes");
    }
    let call = parse(&input).context("guard")?;
    let id = caller_id(args.id.clone(), call.session.as_deref())?;
    if (args.claim || args.release) && id.is_none() {
        return Err(args::UsageError(
            "guard --claim and --release need an id that lasts: give --id, set BATON_ID, or send a session_id"
                .to_owned(),
        )
        .into());
    }
    if let (true, Some(id)) = (args.release, &id) {
        let env = RealEnv::new().context("read process identity from /proc")?;
        let claims = claims_for(&env, &args, &call)?.0;
        claims.release(&env, id, None, false).context("guard")?;
        return Ok(Exit::Ok);
    }
    let verdict = judge(&args, &call, id.as_deref())?;
    Ok(match (verdict, args.format) {
        (Verdict::Allow, _) => Exit::Ok,
        (Verdict::Deny(reason), Format::Claude) => {
            report::stdout_line(
                &json!({
                    "hookSpecificOutput": {
                        "hookEventName": "PreToolUse",
                        "permissionDecision": "deny",
                        "permissionDecisionReason": reason,
                    }
                })
                .to_string(),
            );
            Exit::Ok
        }
        (Verdict::Deny(reason), Format::Exit) => {
            report::stderr_line(&reason);
            // The hooks' convention: 2 blocks the tool call.
            Exit::Command(2)
        }
    })
}

fn judge(args: &GuardArgs, call: &Call, id: Option<&str>) -> anyhow::Result<Verdict> {
    if call.paths.is_empty() {
        return Ok(Verdict::Allow);
    }
    let env = RealEnv::new().context("read process identity from /proc")?;
    let (claims, here) = claims_for(&env, args, call)?;
    let mut paths = Vec::new();
    for p in &call.paths {
        match claims.normalise(&env, &here, p) {
            Ok(p) => paths.push(p),
            // Outside the repository: nothing baton coordinates.
            Err(ClaimError::Outside { .. }) => {}
            Err(e) => return Err(e).context("guard"),
        }
    }
    for path in &paths {
        let holders = claims.who(&env, path).context("guard")?;
        if let Some(c) = holders.iter().find(|c| Some(c.record.id.as_str()) != id) {
            return Ok(Verdict::Deny(denial(path, &c.record)));
        }
    }
    let (Some(id), true, false) = (id, args.claim, paths.is_empty()) else {
        return Ok(Verdict::Allow);
    };
    let who = Claimant {
        id: id.to_owned(),
        task: args.task.clone().unwrap_or_else(|| call.tool.clone()),
        ttl: Some(args.ttl),
    };
    Ok(
        match claims
            .claim(&env, &paths, &who, Wait::No)
            .context("guard")?
        {
            Claimed::All(_) => Verdict::Allow,
            // Claimed by another between the look and the claim.
            Claimed::Conflict { path, holder } => Verdict::Deny(denial(&path, &holder)),
        },
    )
}

/// The claims directory for the tool call's working directory (or ours),
/// and that directory resolved.
fn claims_for(env: &RealEnv, args: &GuardArgs, call: &Call) -> anyhow::Result<(Claims, PathBuf)> {
    let cwd = call.cwd.clone().unwrap_or_else(|| PathBuf::from("."));
    let here = env
        .canonicalize(&cwd)
        .with_context(|| format!("guard: resolve the tool call's cwd {}", cwd.display()))?;
    let root = hygiene::find_repo(env, &here)?.map_or_else(|| here.clone(), |r| r.work_tree);
    let claims = match &args.dir {
        Some(dir) => Claims::new(here.join(dir), root),
        None => Claims::new(root.join(".baton").join("claims"), root),
    };
    Ok((claims, here))
}

fn denial(path: &str, holder: &baton_core::claims::ClaimRecord) -> String {
    let through = if holder.path == path {
        String::new()
    } else {
        format!(" (through {})", holder.path)
    };
    format!(
        "baton: {path} is claimed by {}{through}: work on something else, or ask its holder to release it (`baton who {}` shows the claim)",
        holder_text(holder),
        shell_word(path)
    )
}

/// `path` quoted for a shell when it needs it.
fn shell_word(path: &str) -> String {
    if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        path.to_owned()
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_of_every_shape_name_their_files() {
        let call = parse(
            br#"{"session_id":"s1","cwd":"/w","hook_event_name":"PreToolUse","tool_name":"Edit",
                "tool_input":{"file_path":"/w/a.ts","old_string":"x","new_string":"y"}}"#,
        )
        .unwrap();
        assert_eq!(call.tool, "Edit");
        assert_eq!(call.paths, [PathBuf::from("/w/a.ts")]);
        assert_eq!(call.session.as_deref(), Some("s1"));
        let call = parse(br#"{"tool_name":"apply","tool_input":{"paths":["a","b"]}}"#).unwrap();
        assert_eq!(call.paths, [PathBuf::from("a"), PathBuf::from("b")]);
        let call = parse(br#"{"tool_name":"Bash","tool_input":{"command":"ls"}}"#).unwrap();
        assert!(call.paths.is_empty());
        assert!(parse(b"not json").is_err());
    }

    #[test]
    fn denials_quote_what_a_shell_would_split() {
        assert_eq!(shell_word("src/a.ts"), "src/a.ts");
        assert_eq!(shell_word("it's here"), r"'it'\''s here'");
    }
}
