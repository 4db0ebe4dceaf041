//! `baton mcp`: a Model Context Protocol server over stdio, so an agent
//! coordinates by calling tools: `claim`, `release`, `who`, `status`,
//! `state_get`, `state_update`, `commit`.
//!
//! Why no MCP crate: the maintained one (`rmcp`, the official Rust SDK) is
//! built on tokio with procedural macros for schemas; baton is synchronous,
//! and what a stdio server needs is line-delimited JSON-RPC 2.0 with four
//! methods (`initialize`, `ping`, `tools/list`, `tools/call`), which this
//! file is. Messages are one JSON object per line on stdin and stdout;
//! stderr carries only git hooks' output.
//!
//! The server is one instance: its claims carry its id (`--id`,
//! `BATON_ID`, else `mcp-HOST-PID-START`), are detached with a TTL renewed
//! by claiming again, and are released when stdin closes (the agent's
//! session ended). Every path an agent names must lie inside the
//! repository (or the directory) the server runs in.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use baton_core::claims::{ClaimRecord, Claimant, Claimed, Claims};
use baton_core::commit::{self, Request};
use baton_core::env::Clock;
use baton_core::env::real::RealEnv;
use baton_core::lock::{self, Wait};
use baton_core::state::{self, Outcome, Strategy, UpdateOptions};
use clap::Args;
use serde_json::{Value, json};

use crate::args;
use crate::claim_cmd::{claims_of, holder_text, instance_id, record_json};
use crate::commit_cmd;
use crate::elect_cmd::election_dir;
use crate::exit::Exit;
use crate::status_cmd;

/// The protocol versions this server speaks, newest first.
const VERSIONS: [&str; 3] = ["2025-06-18", "2025-03-26", "2024-11-05"];

/// Longest message read (a state document rides in one).
const MESSAGE_LIMIT: u64 = 64 << 20;

/// How long `state_update` waits for the state file's lock.
const STATE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct McpArgs {
    /// This server's instance id (default: $BATON_ID, else mcp-HOST-PID-START)
    #[arg(long, value_name = "ID", value_parser = args::instance_id)]
    pub id: Option<String>,
    /// The claims directory (default: .baton/claims at the repository's top)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// How long claims live unless claimed again
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = args::positive_secs)]
    pub ttl: Duration,
}

/// A JSON-RPC error: code and message.
struct RpcError(i64, String);

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

struct Server {
    env: RealEnv,
    claims: Claims,
    here: PathBuf,
    id: String,
    ttl: Duration,
}

pub fn run(args: McpArgs) -> anyhow::Result<Exit> {
    let env = RealEnv::new().context("read process identity from /proc")?;
    let (claims, here) = claims_of(&env, args.dir)?;
    let id = match args.id {
        Some(id) => id,
        None => {
            let (id, lasting) = instance_id(&env, None)?;
            if lasting { id } else { format!("mcp-{id}") }
        }
    };
    let server = Server {
        env,
        claims,
        here,
        id,
        ttl: args.ttl,
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    loop {
        let mut line = Vec::new();
        let read = std::io::Read::take(&mut input, MESSAGE_LIMIT + 1)
            .read_until(b'\n', &mut line)
            .context("mcp: read stdin")?;
        if read == 0 {
            break;
        }
        let reply = if line.len() as u64 > MESSAGE_LIMIT {
            skip_line(&mut input)?;
            Some(error_reply(
                Value::Null,
                RpcError(
                    INVALID_REQUEST,
                    format!("message over {MESSAGE_LIMIT} bytes"),
                ),
            ))
        } else if line.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice::<Value>(&line) {
                Ok(message) => server.handle(&message),
                Err(e) => Some(error_reply(
                    Value::Null,
                    RpcError(PARSE_ERROR, format!("parse error: {e}")),
                )),
            }
        };
        if let Some(reply) = reply {
            // One line per message: serde_json escapes every newline.
            writeln!(out, "{reply}").context("mcp: write stdout")?;
            out.flush().context("mcp: write stdout")?;
        }
    }
    // The session is over: what it claimed goes with it.
    server
        .claims
        .release(&server.env, &server.id, None, false)
        .context("mcp: release this session's claims")?;
    Ok(Exit::Ok)
}

/// Reads and drops the rest of an oversized line, a bounded chunk at a time.
fn skip_line(input: &mut impl BufRead) -> anyhow::Result<()> {
    loop {
        let buf = input.fill_buf().context("mcp: read stdin")?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            input.consume(end + 1);
            return Ok(());
        }
        let n = buf.len();
        input.consume(n);
    }
}

fn error_reply(id: Value, e: RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": e.0, "message": e.1 } })
}

impl Server {
    /// The reply to one message (`None` for notifications and responses).
    fn handle(&self, message: &Value) -> Option<Value> {
        let Some(obj) = message.as_object() else {
            return Some(error_reply(
                Value::Null,
                RpcError(
                    INVALID_REQUEST,
                    "a message is one JSON object (batches are not supported)".into(),
                ),
            ));
        };
        let id = obj.get("id").cloned();
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            // A response to a request we never send, or junk with an id.
            return id.map(|id| error_reply(id, RpcError(INVALID_REQUEST, "no method".into())));
        };
        // Notifications (no id) get no reply, whatever they say.
        let id = id?;
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        let result = match method {
            "initialize" => Ok(self.initialize(&params)),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({ "tools": tools() })),
            "tools/call" => self.call(&params),
            _ => Err(RpcError(
                METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            )),
        };
        Some(match result {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(e) => error_reply(id, e),
        })
    }

    fn initialize(&self, params: &Value) -> Value {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let version = asked
            .filter(|v| VERSIONS.contains(v))
            .unwrap_or(VERSIONS[0]);
        json!({
            "protocolVersion": version,
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": { "name": "baton", "version": env!("CARGO_PKG_VERSION") },
            "instructions": format!(
                "Coordinate with other agents in this repository. Before editing files, `claim` them \
                 (all or nothing; a conflict names who has them and why); `release` when done. \
                 Update shared JSON state with `state_update` (never lost to a concurrent writer), \
                 and commit with `commit` (exactly the paths given, whatever else is staged). \
                 This session's id is {}.",
                self.id
            ),
        })
    }

    fn call(&self, params: &Value) -> Result<Value, RpcError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError(INVALID_PARAMS, "tools/call needs a tool name".into()))?;
        let empty = json!({});
        let a = params.get("arguments").unwrap_or(&empty);
        let outcome = match name {
            "claim" => self.claim(a),
            "release" => self.release(a),
            "who" => self.who(a),
            "status" => self.status(),
            "state_get" => self.state_get(a),
            "state_update" => self.state_update(a),
            "commit" => self.commit(a),
            _ => return Err(RpcError(INVALID_PARAMS, format!("unknown tool: {name}"))),
        };
        Ok(match outcome {
            Ok(Done { text, data }) => json!({
                "content": [{ "type": "text", "text": text }],
                "structuredContent": data,
                "isError": false,
            }),
            Err(Failed::Params(why)) => {
                return Err(RpcError(INVALID_PARAMS, format!("{name}: {why}")));
            }
            Err(Failed::Tool { text, data }) => json!({
                "content": [{ "type": "text", "text": text }],
                "structuredContent": data,
                "isError": true,
            }),
        })
    }

    /// `path` as the claims name it: inside the root, normalised.
    fn rel(&self, path: &str) -> Result<String, Failed> {
        self.claims
            .normalise(&self.env, &self.here, Path::new(path))
            .map_err(|e| Failed::tool(format!("baton: {e}")))
    }

    fn claim(&self, a: &Value) -> Result<Done, Failed> {
        let paths = strings(a, "paths")?.ok_or(Failed::Params("`paths` is required".into()))?;
        if paths.is_empty() {
            return Err(Failed::Params("`paths` is empty".into()));
        }
        let paths = paths
            .iter()
            .map(|p| self.rel(p))
            .collect::<Result<Vec<_>, _>>()?;
        let ttl = match a.get("ttl") {
            None | Some(Value::Null) => self.ttl,
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0 * 365.0)
                .map(Duration::from_secs_f64)
                .ok_or(Failed::Params("`ttl` is seconds, more than 0".into()))?,
        };
        let who = Claimant {
            id: self.id.clone(),
            task: text(a, "task")?.unwrap_or_default(),
            ttl: Some(ttl),
        };
        match self
            .claims
            .claim(&self.env, &paths, &who, Wait::No)
            .map_err(Failed::from_error)?
        {
            Claimed::All(held) => Ok(Done {
                text: format!("claimed {} for {}s", held.paths.join(", "), ttl.as_secs()),
                data: json!({ "claimed": held.paths, "id": self.id, "ttl_s": ttl.as_secs_f64() }),
            }),
            Claimed::Conflict { path, holder } => Err(Failed::Tool {
                text: format!(
                    "{path}: claimed by {}; nothing claimed: work on something else, or ask its holder",
                    holder_text(&holder)
                ),
                data: json!({ "conflict": { "path": path, "holder": record_json(&holder) } }),
            }),
        }
    }

    fn release(&self, a: &Value) -> Result<Done, Failed> {
        let paths = match strings(a, "paths")? {
            Some(p) => Some(
                p.iter()
                    .map(|p| self.rel(p))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let removed = self
            .claims
            .release(&self.env, &self.id, paths.as_deref(), false)
            .map_err(Failed::from_error)?;
        let released: Vec<&str> = removed.iter().map(|r| r.path.as_str()).collect();
        Ok(Done {
            text: if released.is_empty() {
                "nothing to release".to_owned()
            } else {
                format!("released {}", released.join(", "))
            },
            data: json!({ "released": released }),
        })
    }

    fn who(&self, a: &Value) -> Result<Done, Failed> {
        let path = text(a, "path")?.ok_or(Failed::Params("`path` is required".into()))?;
        let path = self.rel(&path)?;
        let holders: Vec<ClaimRecord> = self
            .claims
            .who(&self.env, &path)
            .map_err(Failed::from_error)?
            .into_iter()
            .filter(|c| c.record.id != self.id)
            .map(|c| c.record)
            .collect();
        Ok(Done {
            text: match holders.first() {
                None => format!("{path}: free"),
                Some(h) => format!("{path}: claimed by {}", holder_text(h)),
            },
            data: json!({
                "path": path, "free": holders.is_empty(),
                "claims": holders.iter().map(record_json).collect::<Vec<_>>(),
            }),
        })
    }

    fn status(&self) -> Result<Done, Failed> {
        let election = election_dir(&self.env, None).map_err(Failed::from_error)?;
        let view = status_cmd::view_json(&self.env, &election, Some(self.claims.dir.clone()))
            .map_err(Failed::from_error)?;
        Ok(Done {
            text: view.to_string(),
            data: view,
        })
    }

    /// A state file named by the agent, inside the root.
    fn state_file(&self, a: &Value) -> Result<PathBuf, Failed> {
        let file = text(a, "file")?.ok_or(Failed::Params("`file` is required".into()))?;
        Ok(self.claims.root.join(self.rel(&file)?))
    }

    fn state_get(&self, a: &Value) -> Result<Done, Failed> {
        let file = self.state_file(a)?;
        let bytes = state::get(&self.env, &file).map_err(Failed::from_error)?;
        let document: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Failed::tool(format!("baton: {}: not JSON: {e}", file.display())))?;
        Ok(Done {
            text: document.to_string(),
            data: json!({ "document": document }),
        })
    }

    fn state_update(&self, a: &Value) -> Result<Done, Failed> {
        let file = self.state_file(a)?;
        let (value, merge) = (a.get("value"), a.get("merge"));
        let merge = match (value, merge) {
            (Some(_), None) => None,
            (None, Some(Value::Object(m))) => Some(m),
            (None, Some(_)) => return Err(Failed::Params("`merge` is an object".into())),
            _ => {
                return Err(Failed::Params(
                    "give exactly one of `value` and `merge`".into(),
                ));
            }
        };
        let expect = a.get("expect");
        let mut new_document = Value::Null;
        let mode = lock::mode_for(&self.env, &file).map_err(Failed::from_error)?;
        let opts = UpdateOptions::new(Strategy::Locked, mode, Wait::For(STATE_WAIT));
        let outcome = state::update(&self.env, &file, &opts, &mut |_| {}, |old| {
            let old: Value =
                serde_json::from_slice(old).map_err(|e| Refused::NotJson(e.to_string()))?;
            if let Some(expect) = expect
                && *expect != old
            {
                return Err(Refused::Changed(old));
            }
            let new = match merge {
                None => value.cloned().unwrap_or(Value::Null),
                Some(m) => {
                    let mut doc = match old {
                        Value::Object(o) => o,
                        Value::Null => serde_json::Map::new(),
                        _ => return Err(Refused::NotObject),
                    };
                    for (k, v) in m {
                        doc.insert(k.clone(), v.clone());
                    }
                    Value::Object(doc)
                }
            };
            new_document = new.clone();
            Ok(new.to_string().into_bytes())
        });
        let shown = file.display();
        match outcome.map_err(Failed::from_error)? {
            Outcome::Updated { .. } => Ok(Done {
                text: format!("{shown} updated"),
                data: json!({ "document": new_document }),
            }),
            Outcome::Busy { .. } => Err(Failed::tool(format!(
                "baton: {shown}: its lock stayed held for {}s; nothing changed",
                STATE_WAIT.as_secs()
            ))),
            Outcome::Aborted(Refused::Changed(current)) => Err(Failed::Tool {
                text: format!(
                    "{shown}: the document is no longer the one expected; nothing changed"
                ),
                data: json!({ "changed": true, "document": current }),
            }),
            Outcome::Aborted(Refused::NotObject) => Err(Failed::tool(format!(
                "baton: {shown}: `merge` needs the document to be an object; nothing changed"
            ))),
            Outcome::Aborted(Refused::NotJson(e)) => Err(Failed::tool(format!(
                "baton: {shown}: not JSON: {e}; nothing changed"
            ))),
        }
    }

    fn commit(&self, a: &Value) -> Result<Done, Failed> {
        let paths = strings(a, "paths")?.ok_or(Failed::Params("`paths` is required".into()))?;
        let message = text(a, "message")?.ok_or(Failed::Params("`message` is required".into()))?;
        let allow_empty = a
            .get("allow_empty")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let started = self.env.monotonic();
        let opened = commit_cmd::open(&self.env, Some(&self.here)).map_err(Failed::from_error)?;
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        let scope = commit_cmd::scope(&self.env, &opened, &paths).map_err(Failed::from_error)?;
        let req = Request {
            paths: &scope,
            message: &message,
            allow_empty,
            detach_ok: false,
            verify: true,
            attempts: commit::ATTEMPTS,
        };
        let c = commit::commit(&self.env, &opened.git, &opened.repo, &req)
            .map_err(Failed::from_error)?;
        let took = self.env.monotonic().saturating_since(started);
        let mut data = commit_cmd::committed_json(&c, took);
        if let Some(o) = data.as_object_mut() {
            o.remove("event");
        }
        Ok(Done {
            text: format!("committed {} as {}", scope.join(", "), c.commit),
            data,
        })
    }
}

/// A tool's answer.
struct Done {
    text: String,
    data: Value,
}

enum Failed {
    /// The arguments are wrong: a protocol error.
    Params(String),
    /// The tool ran and says no (`isError`), in one line and as data.
    Tool { text: String, data: Value },
}

impl Failed {
    fn tool(text: String) -> Failed {
        Failed::Tool {
            text,
            data: json!({}),
        }
    }

    fn from_error(e: impl Into<anyhow::Error>) -> Failed {
        Failed::tool(format!("baton: {:#}", e.into()))
    }
}

/// Why `state_update`'s function refused.
enum Refused {
    Changed(Value),
    NotObject,
    NotJson(String),
}

fn text(a: &Value, key: &str) -> Result<Option<String>, Failed> {
    match a.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Failed::Params(format!("`{key}` is a string"))),
    }
}

fn strings(a: &Value, key: &str) -> Result<Option<Vec<String>>, Failed> {
    match a.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| Failed::Params(format!("`{key}` is a list of strings"))),
        Some(_) => Err(Failed::Params(format!("`{key}` is a list of strings"))),
    }
}

/// The tools, with their input schemas.
fn tools() -> Value {
    let paths = json!({ "type": "array", "items": { "type": "string" }, "minItems": 1 });
    json!([
        {
            "name": "claim",
            "title": "Claim files",
            "description": "Claim paths (files or directories, relative to the repository) for this session, all or nothing. Fails naming the holder and its task if another session claims any of them. Claims live `ttl` seconds unless claimed again, and end with the session.",
            "inputSchema": { "type": "object", "properties": {
                "paths": paths, "task": { "type": "string", "description": "What you are doing, shown to others" },
                "ttl": { "type": "number", "exclusiveMinimum": 0, "description": "Seconds the claims live unless claimed again" } },
                "required": ["paths"] }
        },
        {
            "name": "release",
            "title": "Release claims",
            "description": "Release this session's claims on `paths`, or all of them when `paths` is omitted.",
            "inputSchema": { "type": "object", "properties": { "paths": paths } }
        },
        {
            "name": "who",
            "title": "Who claims a path",
            "description": "Which other sessions claim `path` (directly or through a directory): free, or the holders and their tasks.",
            "inputSchema": { "type": "object", "properties": { "path": { "type": "string" } }, "required": ["path"] }
        },
        {
            "name": "status",
            "title": "Coordination status",
            "description": "The election's primary and members, and every claim with its session, task and expiry.",
            "inputSchema": { "type": "object", "properties": {} }
        },
        {
            "name": "state_get",
            "title": "Read a JSON state file",
            "description": "The JSON document in `file` (null if it does not exist).",
            "inputSchema": { "type": "object", "properties": { "file": { "type": "string" } }, "required": ["file"] }
        },
        {
            "name": "state_update",
            "title": "Update a JSON state file",
            "description": "Atomically replace `file`'s document with `value`, or set the keys of `merge` in it (an object), under its lock: concurrent updates are never lost. With `expect`, only if the document is still exactly `expect` (compare-and-swap); otherwise nothing changes and the current document is returned.",
            "inputSchema": { "type": "object", "properties": {
                "file": { "type": "string" }, "value": {}, "merge": { "type": "object" }, "expect": {} },
                "required": ["file"] }
        },
        {
            "name": "commit",
            "title": "Commit exactly these paths",
            "description": "Commit exactly `paths` onto the current branch with `message`, whatever else is staged (others' work stays out of the commit), running git's hooks.",
            "inputSchema": { "type": "object", "properties": {
                "paths": paths, "message": { "type": "string", "minLength": 1 },
                "allow_empty": { "type": "boolean" } },
                "required": ["paths", "message"] }
        }
    ])
}
