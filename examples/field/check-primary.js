// Fails (exit 1) if two primaries' terms in primary.log overlap. Lines are
// `begin ID COPY` and `end ID`. A copy baton explore killed
// (BATON_EXPLORE_KILLED) never writes its `end`: its term ended when it
// died, so a later `begin` does not overlap it.
'use strict';
const fs = require('node:fs');

let log = '';
try {
  log = fs.readFileSync('primary.log', 'utf8');
} catch {
  process.exit(0); // nobody was primary: not this check's business
}
const killed = process.env.BATON_EXPLORE_KILLED;
const active = new Map(); // id -> copy
for (const line of log.split('\n').filter(Boolean)) {
  const [what, id, copy] = line.split(' ');
  if (what === 'begin') {
    for (const [other, c] of active) if (killed !== undefined && c === killed) active.delete(other);
    if (active.size > 0) {
      console.error(`two primaries: ${id} began while ${[...active.keys()].join(', ')} held the term`);
      process.exit(1);
    }
    active.set(id, copy);
  } else if (what === 'end') {
    active.delete(id);
  }
}
