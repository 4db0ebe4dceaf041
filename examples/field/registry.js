// Seed 001, as the plugin wrote it: every instance adds its id to a shared
// list in instances.json, waits 150 ms for the others, and the smallest id
// on the list is primary. The read-modify-write loses registrations, and
// an instance that registers late finds the others' election over.
//
// The primary logs `begin ID` and `end ID` around its term in primary.log;
// check-primary.js fails if two terms overlap.
'use strict';
const fs = require('node:fs');

const LIST = 'instances.json';
const ID = process.env.INSTANCE_ID || `i${process.pid}`;
const COPY = process.env.BATON_EXPLORE_COPY ?? '-'; // set by baton explore
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function readList() {
  try {
    return JSON.parse(fs.readFileSync(LIST, 'utf8'));
  } catch {
    return { instances: [] };
  }
}

async function main() {
  const list = readList();
  if (!list.instances.includes(ID)) list.instances.push(ID);
  fs.writeFileSync(LIST, JSON.stringify(list));
  await sleep(150);
  const smallest = readList().instances.slice().sort()[0];
  if (smallest === ID) {
    fs.appendFileSync('primary.log', `begin ${ID} ${COPY}\n`);
    await sleep(300); // logging, as primary
    fs.appendFileSync('primary.log', `end ${ID}\n`);
  }
}

main();
