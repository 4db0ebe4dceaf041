//! `baton mcp` against a scripted client: the handshake, tool listing,
//! tool calls from two sessions, and the protocol's errors.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use common::BATON;

/// A running `baton mcp` and the client's end of its stdio.
struct Session {
    child: Child,
    to: Option<ChildStdin>,
    from: mpsc::Receiver<String>,
    next_id: u64,
}

impl Session {
    fn start(dir: &Path, id: &str) -> Session {
        let mut child = Command::new(BATON)
            .current_dir(dir)
            .args(["mcp", "--id", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Session {
            to: child.stdin.take(),
            child,
            from: rx,
            next_id: 1,
        }
    }

    fn send_raw(&mut self, line: &str) {
        let to = self.to.as_mut().unwrap();
        to.write_all(line.as_bytes()).unwrap();
        to.write_all(b"\n").unwrap();
        to.flush().unwrap();
    }

    fn reply(&self) -> Value {
        let line = self
            .from
            .recv_timeout(Duration::from_secs(30))
            .expect("a reply within 30 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send_raw(&msg.to_string());
        let reply = self.reply();
        assert_eq!(reply["jsonrpc"], "2.0");
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    /// Calls `tool`; its result (`isError` says how it went).
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let reply = self.request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        );
        let result = reply["result"].clone();
        assert!(result.is_object(), "{reply}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert_eq!(result["content"][0]["type"], "text");
        assert!(!text.is_empty(), "{reply}");
        result
    }

    fn handshake(&mut self) {
        let reply = self.request(
            "initialize",
            json!({ "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "script", "version": "1" } }),
        );
        let result = &reply["result"];
        assert_eq!(result["protocolVersion"], "2025-06-18");
        assert_eq!(result["serverInfo"]["name"], "baton");
        assert!(result["capabilities"]["tools"].is_object());
        // A notification gets no reply: the next reply is the ping's.
        self.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let pong = self.request("ping", json!({}));
        assert_eq!(pong["result"], json!({}));
    }

    /// Closes stdin; the server's exit status.
    fn end(mut self) -> i32 {
        drop(self.to.take());
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

fn repo() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["config", "user.name", "t"],
        &["config", "user.email", "t@example.com"],
        &["config", "commit.gpgSign", "false"],
    ] {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(d)
                .status()
                .unwrap()
                .success()
        );
    }
    std::fs::write(d.join("TODO.md"), "# TODO\n").unwrap();
    assert!(
        Command::new("git")
            .args(["add", "-A"])
            .current_dir(d)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("git")
            .args(["commit", "-qm", "init"])
            .current_dir(d)
            .status()
            .unwrap()
            .success()
    );
    t
}

#[test]
fn two_agents_coordinate_through_the_tools() {
    let t = repo();
    let d = t.path();
    let mut a = Session::start(d, "agent-a");
    let mut b = Session::start(d, "agent-b");
    a.handshake();
    b.handshake();

    let listed = a.request("tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "claim",
            "release",
            "who",
            "status",
            "state_get",
            "state_update",
            "commit"
        ]
    );
    for tool in tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert!(tool["description"].as_str().unwrap().len() > 20);
    }

    // a claims TODO.md; b is told who has it and why.
    let r = a.call("claim", json!({ "paths": ["TODO.md"], "task": "task 306" }));
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["structuredContent"]["claimed"], json!(["TODO.md"]));
    let r = b.call("claim", json!({ "paths": ["TODO.md", "src"] }));
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(
        r["structuredContent"]["conflict"]["holder"]["id"],
        "agent-a"
    );
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("task 306")
    );
    let r = b.call("who", json!({ "path": "TODO.md" }));
    assert_eq!(r["structuredContent"]["free"], false);
    assert_eq!(r["structuredContent"]["claims"][0]["task"], "task 306");
    let r = a.call("who", json!({ "path": "TODO.md" }));
    assert_eq!(
        r["structuredContent"]["free"], true,
        "its own claim is not in its way"
    );
    let r = b.call("status", json!({}));
    assert_eq!(r["structuredContent"]["claims"][0]["id"], "agent-a");

    // Shared state: merges from both sessions lose nothing; a stale
    // compare-and-swap changes nothing and shows the current document.
    for (s, key) in [(&mut a, "a"), (&mut b, "b")] {
        let r = s.call(
            "state_update",
            json!({ "file": "state.json", "merge": { key: 1 } }),
        );
        assert_eq!(r["isError"], false, "{r}");
    }
    let r = a.call("state_get", json!({ "file": "state.json" }));
    assert_eq!(
        r["structuredContent"]["document"],
        json!({ "a": 1, "b": 1 })
    );
    let r = b.call(
        "state_update",
        json!({ "file": "state.json", "expect": { "a": 1 }, "value": { "b": 2 } }),
    );
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(
        r["structuredContent"]["document"],
        json!({ "a": 1, "b": 1 })
    );
    let r = b.call(
        "state_update",
        json!({ "file": "state.json", "expect": { "a": 1, "b": 1 }, "value": { "b": 2 } }),
    );
    assert_eq!(r["isError"], false, "{r}");
    // Paths outside the repository are refused.
    let r = a.call(
        "state_update",
        json!({ "file": "../escape.json", "value": 1 }),
    );
    assert_eq!(r["isError"], true, "{r}");
    assert!(!d.parent().unwrap().join("escape.json").exists());

    // a commits exactly TODO.md, whatever else is there.
    std::fs::write(d.join("TODO.md"), "# TODO\n- task 306\n").unwrap();
    let r = a.call(
        "commit",
        json!({ "paths": ["TODO.md"], "message": "task 306" }),
    );
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(
        r["structuredContent"]["changes"],
        json!([{ "path": "TODO.md", "status": "modified" }])
    );
    let shown = Command::new("git")
        .args(["show", "--name-only", "--format=%s", "HEAD"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        "task 306\n\nTODO.md\n"
    );
    let r = a.call(
        "commit",
        json!({ "paths": ["TODO.md"], "message": "again" }),
    );
    assert_eq!(r["isError"], true, "nothing to commit: {r}");

    // a's session ends: its claims go with it, and b may claim.
    assert_eq!(a.end(), 0);
    let r = b.call("claim", json!({ "paths": ["TODO.md"] }));
    assert_eq!(r["isError"], false, "{r}");
    let r = b.call("release", json!({}));
    assert_eq!(r["structuredContent"]["released"], json!(["TODO.md"]));
    assert_eq!(b.end(), 0);
}

#[test]
fn protocol_errors_are_json_rpc_errors_and_the_server_goes_on() {
    let t = repo();
    let mut s = Session::start(t.path(), "agent-x");
    s.handshake();
    s.send_raw("{ not json");
    let r = s.reply();
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert_eq!(r["id"], Value::Null);
    s.send_raw(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
    assert_eq!(s.reply()["error"]["code"], -32600);
    let r = s.request("resources/list", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = s.request("tools/call", json!({ "name": "rm", "arguments": {} }));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = s.request(
        "tools/call",
        json!({ "name": "claim", "arguments": { "paths": "TODO.md" } }),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // A version it does not speak is answered with its newest.
    let r = s.request("initialize", json!({ "protocolVersion": "1999-01-01" }));
    assert_eq!(r["result"]["protocolVersion"], "2025-06-18");
    // Still serving.
    assert_eq!(s.request("ping", json!({}))["result"], json!({}));
    assert_eq!(s.end(), 0);
}
