// One primary's term, for election-baton.js: begin, work, end.
'use strict';
const fs = require('node:fs');

const id = process.argv[2];
fs.appendFileSync('primary.log', `begin ${id} ${process.env.BATON_EXPLORE_COPY ?? '-'}\n`);
setTimeout(() => fs.appendFileSync('primary.log', `end ${id}\n`), 300);
