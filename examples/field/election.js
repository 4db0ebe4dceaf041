// Seed 000, as the plugin wrote it: each instance creates its own file in
// memory/.plugin-instances/, removes the others' files older than the stale
// threshold (by its own clock against the files' times), waits 150 ms, and the
// smallest id present is primary. A late joiner and a clock that runs
// ahead both make two primaries.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const DIR = path.join('memory', '.plugin-instances');
const STALE_MS = 5000;
const ID = process.env.INSTANCE_ID || `i${process.pid}`;
const COPY = process.env.BATON_EXPLORE_COPY ?? '-'; // set by baton explore
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cleanup() {
  for (const name of fs.readdirSync(DIR)) {
    if (name === `${ID}.lock`) continue;
    const file = path.join(DIR, name);
    try {
      if (Date.now() - fs.statSync(file).mtimeMs > STALE_MS) fs.unlinkSync(file);
    } catch {
      // gone already
    }
  }
}

async function main() {
  fs.mkdirSync(DIR, { recursive: true });
  fs.writeFileSync(path.join(DIR, `${ID}.lock`), String(Date.now()));
  await sleep(150);
  cleanup();
  const ids = fs
    .readdirSync(DIR)
    .filter((n) => n.endsWith('.lock'))
    .map((n) => n.slice(0, -'.lock'.length))
    .sort();
  if (ids[0] === ID) {
    fs.appendFileSync('primary.log', `begin ${ID} ${COPY}\n`);
    await sleep(300);
    fs.appendFileSync('primary.log', `end ${ID}\n`);
  }
}

main();
