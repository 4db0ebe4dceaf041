// Seeds 000 and 001 on baton: the instance campaigns with `baton elect`
// and runs its term (term.js) only while primary; a standby takes over
// when the primary's term ends or its process dies, never during it.
'use strict';
const { spawnSync } = require('node:child_process');

const baton = process.env.BATON || 'baton';
const ID = process.env.INSTANCE_ID || `i${process.pid}`;
const r = spawnSync(baton, ['elect', '--dir', 'memory/election', '--id', ID, '--', process.execPath, 'term.js', ID], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
