// For state-baton.js: tasks on stdin, the same tasks and one more on stdout.
'use strict';
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const tasks = JSON.parse(input);
  const id = process.argv[2];
  tasks.push({ id, title: `task of ${id}` });
  process.stdout.write(JSON.stringify(tasks, null, 2));
});
