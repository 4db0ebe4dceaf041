// The command `updateState` asks baton to run: it reads the old document
// on stdin, hands it to the waiting client over a Unix socket, and prints
// the new document the client's function returned (exit 0), or exits 1 if
// that function threw, so baton leaves the file untouched.

import { connect } from "node:net";

const socket = process.argv[2];
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const conn = connect(socket, () => conn.end(input));
  let reply = "";
  conn.on("data", (d) => (reply += d));
  conn.on("end", () => {
    const answer = JSON.parse(reply) as { ok?: string; error?: string };
    if (answer.ok === undefined) {
      process.exitCode = 1;
      return;
    }
    process.stdout.write(answer.ok + "\n");
  });
  conn.on("error", () => (process.exitCode = 1));
});
