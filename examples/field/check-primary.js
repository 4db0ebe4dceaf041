// Fails (exit 1) if two primaries' terms in primary.log overlap, or if a
// term began twice.
'use strict';
const fs = require('node:fs');

let log = '';
try {
  log = fs.readFileSync('primary.log', 'utf8');
} catch {
  process.exit(0); // nobody was primary: not this check's business
}
const active = new Set();
for (const line of log.split('\n').filter(Boolean)) {
  const [what, id] = line.split(' ');
  if (what === 'begin') {
    if (active.size > 0) {
      console.error(`two primaries: ${id} began while ${[...active].join(', ')} held the term`);
      process.exit(1);
    }
    active.add(id);
  } else if (what === 'end') {
    active.delete(id);
  }
}
