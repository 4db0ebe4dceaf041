// A plugin instance that logs only while it is the primary.
//
// Four copies of a plugin loaded at once used to each believe they were
// primary and write every log line four times (seed 001). Here each copy
// starts `baton elect` and reads its JSON events: it logs only after
// `elected`, so exactly one copy writes each line.
//
//   node examples/plugin.js DIR LOGFILE NAME [EVENTS]
//
// BATON names the baton binary (default: `baton` on PATH).
'use strict';
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const fs = require('node:fs');

const [dir, logFile, name, events = '5'] = process.argv.slice(2);
const baton = process.env.BATON || 'baton';
const elect = spawn(baton, ['elect', '--dir', dir, '--id', name], {
  stdio: ['pipe', 'pipe', 'inherit'],
});

let epoch = null; // set while this instance is primary
let leaving = false;
readline.createInterface({ input: elect.stdout }).on('line', (line) => {
  const event = JSON.parse(line);
  // An `elected` read after this instance chose to leave is stale.
  if (event.event === 'elected' && !leaving) {
    epoch = event.epoch;
    log(`primary ${name} epoch ${epoch}`);
  }
});

function log(message) {
  if (epoch !== null) fs.appendFileSync(logFile, `${message}\n`);
}

// Every instance sees every "tool call"; only the primary logs it.
let n = 0;
const timer = setInterval(() => {
  n += 1;
  log(`event ${n} by ${name}`);
  if (n === Number(events)) {
    clearInterval(timer);
    leaving = true;
    epoch = null; // stop acting before leaving the election
    elect.stdin.end();
  }
}, 100);

elect.on('exit', (code) => process.exit(code ?? 1));
