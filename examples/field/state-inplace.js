// Seed 002's tasks.json writer, as the plugin wrote it: read, add a task,
// write the file in place. Two writers lose each other's tasks; a crash
// between the truncate and the write-back leaves an empty file.
'use strict';
const fs = require('node:fs');

const ID = process.env.INSTANCE_ID || `t${process.pid}`;
const tasks = JSON.parse(fs.readFileSync('tasks.json', 'utf8'));
tasks.push({ id: ID, title: `task of ${ID}` });
fs.writeFileSync('tasks.json', JSON.stringify(tasks, null, 2));
fs.appendFileSync('done.log', `${ID}\n`);
