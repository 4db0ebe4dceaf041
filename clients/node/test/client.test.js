// The client against the real binary (built by cargo; BATON names it).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

process.env.BATON ??= path.resolve(__dirname, '../../../target/release/baton');
const baton = require('..');

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'baton-client-test-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('withLock runs one holder at a time and returns its value', async () => {
  const dir = tmp();
  const counter = path.join(dir, 'counter');
  fs.writeFileSync(counter, '0');
  const results = await Promise.all(
    [1, 2, 3, 4].map((i) =>
      baton.withLock(counter, async () => {
        const n = Number(fs.readFileSync(counter, 'utf8'));
        await sleep(20);
        fs.writeFileSync(counter, String(n + 1));
        return i;
      }),
    ),
  );
  assert.deepEqual(results, [1, 2, 3, 4]);
  assert.equal(fs.readFileSync(counter, 'utf8'), '4');
});

test('a held lock is a typed error with exit 75 when not waiting', async () => {
  const dir = tmp();
  const file = path.join(dir, 'f');
  await baton.withLock(file, async () => {
    await assert.rejects(baton.withLock(file, () => 1, { wait: 0 }), (e) => {
      assert.ok(e instanceof baton.BatonError);
      assert.equal(e.exitCode, 75);
      assert.ok(e.unavailable);
      assert.match(e.message, /^baton: /);
      return true;
    });
  });
});

test('updateState loses no update in either mode, and a throwing fn changes nothing', async () => {
  for (const cas of [false, true]) {
    const dir = tmp();
    const file = path.join(dir, 'tasks.json');
    await Promise.all(
      Array.from({ length: 8 }, () =>
        baton.updateState(file, (old) => ({ count: (old?.count ?? 0) + 1 }), { cas }),
      ),
    );
    assert.deepEqual(await baton.getState(file), { count: 8 }, `cas=${cas}`);
    await assert.rejects(
      baton.updateState(file, () => {
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.deepEqual(await baton.getState(file), { count: 8 });
  }
});

test('claims: all or nothing, who says who, release frees', async () => {
  const dir = tmp();
  const opts = { cwd: dir };
  await baton.claim(['src'], { ...opts, id: 'agent-1', task: 'feedback' });
  await assert.rejects(baton.claim(['docs', 'src/x.ts'], { ...opts, id: 'agent-2' }), (e) => {
    assert.ok(e.unavailable);
    assert.match(e.message, /claimed by agent-1/);
    return true;
  });
  assert.deepEqual(await baton.who('docs/a.md', opts), []);
  const holders = await baton.who('src/x.ts', opts);
  assert.equal(holders.length, 1);
  assert.equal(holders[0].id, 'agent-1');
  assert.equal(holders[0].task, 'feedback');
  await baton.release([], { ...opts, id: 'agent-1' });
  assert.deepEqual(await baton.who('src/x.ts', opts), []);
});

test('four instances: exactly one logs each event, the primary killed midway', async () => {
  const dir = path.join(tmp(), 'election');
  const log = [];
  const instances = [0, 1, 2, 3].map((i) => {
    const me = { name: `plugin-${i}`, term: null, lost: 0 };
    me.handle = baton.elect({
      dir,
      id: me.name,
      onElected: (epoch, term) => {
        me.term = term;
        me.epoch = epoch;
      },
      onLost: () => {
        me.lost += 1;
      },
    });
    return me;
  });
  const primary = async () => {
    for (let tries = 0; tries < 400; tries++) {
      const acting = instances.filter((m) => m.term && !m.term.aborted);
      assert.ok(acting.length <= 1, 'two primaries');
      if (acting.length === 1) return acting[0];
      await sleep(10);
    }
    throw new Error('no primary elected');
  };
  // Every instance sees every event; only the one acting as primary logs.
  const deliver = (n) => {
    for (const m of instances) {
      if (m.term && !m.term.aborted) log.push(`event ${n} by ${m.name} epoch ${m.epoch}`);
    }
  };
  for (let n = 1; n <= 6; n++) {
    await primary();
    deliver(n);
  }
  const first = await primary();
  first.handle.process.kill('SIGKILL');
  // Its term ends with its baton: the signal aborts, onLost runs.
  for (let tries = 0; tries < 400 && !first.term.aborted; tries++) await sleep(5);
  assert.ok(first.term.aborted);
  assert.equal(first.lost, 1);
  for (let n = 7; n <= 12; n++) {
    const p = await primary();
    assert.notEqual(p, first);
    deliver(n);
  }
  for (let n = 1; n <= 12; n++) {
    const lines = log.filter((l) => l.startsWith(`event ${n} by`));
    assert.equal(lines.length, 1, `event ${n}: ${lines}`);
  }
  const epochs = log.map((l) => Number(l.split(' epoch ')[1]));
  assert.ok(epochs[11] > epochs[0], `${epochs}`);
  const st = await instances[1].handle.status();
  assert.equal(st.mode, 'kernel');
  await Promise.all(instances.filter((m) => m !== first).map((m) => m.handle.resign()));
});

test('a missing binary is one clear error naming BATON and PATH', () => {
  assert.throws(() => baton.findBaton({ PATH: '/nonexistent' }), /BATON.*PATH/);
  assert.throws(() => baton.findBaton({ BATON: '/no/such/baton' }), /BATON=\/no\/such\/baton/);
});
