// client-latency.js [N] -- what a Node client call adds over running the
// bare CLI from Node: median of N interleaved rounds of each pair.
// Needs the client built (cd clients/node && npm ci) and BATON set.
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const baton = require('../clients/node');

const n = Number(process.argv[2] ?? 40);
const B = process.env.BATON;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-latency-'));
const git = (...a) => execFileSync('git', a, { cwd: dir });
git('init', '-q', '-b', 'main');
git('config', 'user.name', 'l');
git('config', 'user.email', 'l@l');
git('config', 'commit.gpgSign', 'false');
fs.writeFileSync(path.join(dir, 'a.txt'), '0\n');
git('add', '-A');
git('commit', '-qm', 'init');
const file = path.join(dir, 'state.json');
const cli = (...a) => {
  const r = spawnSync(B, a, { cwd: dir });
  if (r.status !== 0) throw new Error(`${a.join(' ')}: ${r.stderr}`);
};
let k = 0;
const edit = () => fs.appendFileSync(path.join(dir, 'a.txt'), `${++k}\n`);
const pairs = {
  lock: [() => baton.withLock(file, () => {}), () => cli('lock', file, '--', 'true')],
  'state update': [() => baton.updateState(file, (o) => ({ n: (o?.n ?? 0) + 1 })), () => cli('state', 'update', file, '--', 'cat')],
  'claim+release': [
    async () => { await baton.claim(['a.txt'], { id: 'l', cwd: dir }); await baton.release([], { id: 'l', cwd: dir }); },
    () => { cli('claim', '--id', 'l', 'a.txt'); cli('release', '--id', 'l'); },
  ],
  commit: [
    () => { edit(); return baton.commit(['a.txt'], 'c', { cwd: dir }); },
    () => { edit(); cli('commit', '-m', 'c', 'a.txt'); },
  ],
};
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
(async () => {
  for (const [name, [client, bare]] of Object.entries(pairs)) {
    const c = [], b = [];
    for (let i = 0; i < n; i++) {
      let t = process.hrtime.bigint(); await client(); c.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint(); await bare(); b.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const [mc, mb] = [median(c), median(b)];
    console.log(`${name.padEnd(14)} client ${mc.toFixed(2)} ms  bare CLI ${mb.toFixed(2)} ms  adds ${(mc - mb).toFixed(2)} ms`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
})();
