// A tight loop of file calls, for measuring baton explore's cost per
// intercepted call: N rounds of open+write+close, stat, rename.
'use strict';
const fs = require('node:fs');

const n = Number(process.argv[2] || 500);
const me = process.env.BATON_EXPLORE_COPY ?? '0';
for (let i = 0; i < n; i += 1) {
  fs.writeFileSync(`f${me}.tmp`, String(i));
  fs.statSync(`f${me}.tmp`);
  fs.renameSync(`f${me}.tmp`, `f${me}`);
}
