// Seed 002's "atomic" writer: write a temporary file and rename it over
// tasks.json, with no fsync. Two writers still lose each other's tasks (and
// share the temporary name); after a machine crash the rename may be on
// disk while the data is not: an empty tasks.json.
'use strict';
const fs = require('node:fs');

const ID = process.env.INSTANCE_ID || `t${process.pid}`;
const tasks = JSON.parse(fs.readFileSync('tasks.json', 'utf8'));
tasks.push({ id: ID, title: `task of ${ID}` });
fs.writeFileSync('tasks.json.tmp', JSON.stringify(tasks, null, 2));
fs.renameSync('tasks.json.tmp', 'tasks.json');
fs.appendFileSync('done.log', `${ID}\n`);
