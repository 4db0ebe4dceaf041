// Fails (exit 1) unless tasks.json is a JSON array holding the task of
// every writer that finished (done.log) and nothing but tasks: a torn or
// empty file, or a lost update, fails it.
'use strict';
const fs = require('node:fs');

let tasks;
try {
  tasks = JSON.parse(fs.readFileSync('tasks.json', 'utf8'));
} catch (e) {
  console.error(`tasks.json: ${e.message}`);
  process.exit(1);
}
if (!Array.isArray(tasks) || tasks.some((t) => typeof t.id !== 'string')) {
  console.error('tasks.json: not a list of tasks');
  process.exit(1);
}
let done = [];
try {
  // Only whole lines: a crash may tear the last one.
  done = fs.readFileSync('done.log', 'utf8').split('\n').slice(0, -1).filter(Boolean);
} catch {
  // no writer finished
}
const have = new Set(tasks.map((t) => t.id));
const lost = done.filter((id) => !have.has(id));
if (lost.length > 0) {
  console.error(`tasks.json lost the task of ${lost.join(', ')}`);
  process.exit(1);
}
