// A plugin instance that logs only while it is the primary.
//
// Four copies of a plugin loaded at once used to each believe they were
// primary and write every log line four times (seed 001). Here each copy
// campaigns through the baton client: it logs only inside a term, and the
// term's AbortSignal stops it the moment the term ends, however it ends.
//
//   node examples/plugin.js DIR LOGFILE NAME [EVENTS]
//
// BATON names the baton binary (default: `baton` on PATH). In a project of
// your own: `npm install /path/to/baton/clients/node`, then
// `require('baton-client')`.
'use strict';
const fs = require('node:fs');
const { elect } = require('../clients/node');

const [dir, logFile, name, events = '5'] = process.argv.slice(2);

let term = null; // while primary: the term's AbortSignal
const election = elect({
  dir,
  id: name,
  onElected: (epoch, signal) => {
    term = signal;
    log(`primary ${name} epoch ${epoch}`);
  },
  onLost: (epoch) => console.error(`${name}: lost the term of epoch ${epoch}`),
});

function log(message) {
  if (term && !term.aborted) fs.appendFileSync(logFile, `${message}\n`);
}

// Every instance sees every "tool call"; only the primary logs it.
let n = 0;
const timer = setInterval(() => {
  n += 1;
  log(`event ${n} by ${name}`);
  if (n === Number(events)) {
    clearInterval(timer);
    // Stops acting (the term aborts) before leaving the election.
    void election.resign();
  }
}, 100);
