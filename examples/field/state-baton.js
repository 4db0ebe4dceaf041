// Seed 002 on baton: `baton state update` runs add-task.js on the current
// contents under the file's lock and replaces tasks.json atomically
// (temporary file, fsync, rename, directory fsync).
'use strict';
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

const baton = process.env.BATON || 'baton';
const ID = process.env.INSTANCE_ID || `t${process.pid}`;
execFileSync(baton, ['state', 'update', 'tasks.json', '--', process.execPath, 'add-task.js', ID], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
fs.appendFileSync('done.log', `${ID}\n`);
