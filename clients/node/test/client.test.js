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

const { execFileSync } = require('node:child_process');
const git = (dir, ...args) => execFileSync('git', args, { cwd: dir, encoding: 'utf8' });

function repo() {
  const dir = tmp();
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'config', 'user.name', 't');
  git(dir, 'config', 'user.email', 't@example.com');
  git(dir, 'config', 'commit.gpgSign', 'false');
  fs.writeFileSync(path.join(dir, 'TODO.md'), '# TODO\n');
  fs.writeFileSync(path.join(dir, 'state.json'), '{}\n');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-qm', 'init');
  return dir;
}

test('commit: exactly the paths given, whatever else is staged; typed refusals', async () => {
  const dir = repo();
  fs.writeFileSync(path.join(dir, 'TODO.md'), '# TODO\n- mine\n');
  fs.writeFileSync(path.join(dir, 'other.txt'), 'staged by someone else\n');
  git(dir, 'add', 'other.txt');
  const c = await baton.commit(['TODO.md'], 'task 306: TODO', { cwd: dir });
  assert.deepEqual(c.changes, [{ path: 'TODO.md', status: 'modified' }]);
  assert.equal(c.validated, true);
  assert.equal(c.ref, 'refs/heads/main');
  assert.equal(git(dir, 'rev-parse', 'HEAD').trim(), c.commit);
  assert.equal(git(dir, 'show', '--name-only', '--format=', 'HEAD'), 'TODO.md\n');
  assert.equal(git(dir, 'diff', '--cached', '--name-only'), 'other.txt\n', 'still staged');
  await assert.rejects(baton.commit(['TODO.md'], 'again', { cwd: dir }), (e) => {
    assert.ok(e instanceof baton.BatonError);
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /nothing to commit/);
    return true;
  });
});

test('txn: concurrent tasks on one TODO.md commit exactly their own line, a throw commits nothing', async () => {
  const dir = repo();
  const todo = path.join(dir, 'TODO.md');
  const results = await Promise.all(
    [1, 2, 3, 4].map((i) =>
      baton.txn(
        ['TODO.md'],
        `task ${i}`,
        async () => {
          const text = fs.readFileSync(todo, 'utf8');
          await sleep(30);
          fs.writeFileSync(todo, `${text}- task ${i}\n`);
        },
        { cwd: dir, wait: 30 },
      ),
    ),
  );
  for (const [n, c] of results.entries()) {
    assert.ok(c, `task ${n + 1} committed`);
    const diff = git(dir, 'show', '--format=', '-U0', c.commit)
      .split('\n')
      .filter((l) => l.startsWith('+') && !l.startsWith('+++'));
    assert.deepEqual(diff, [`+- task ${n + 1}`]);
  }
  assert.equal(fs.readFileSync(todo, 'utf8').split('\n').length, 6, 'nothing lost');
  const thrown = new Error('the task failed');
  await assert.rejects(
    baton.txn(['state.json'], 'doomed', () => {
      fs.writeFileSync(path.join(dir, 'state.json'), '{"half": true}\n');
      throw thrown;
    }, { cwd: dir }),
    (e) => e === thrown,
  );
  assert.equal(git(dir, 'rev-list', '--count', 'HEAD').trim(), '5', 'init and four tasks: nothing for the doomed one');
  // Its edit stays for a person to decide; the next txn over it says so.
  await assert.rejects(baton.txn(['state.json'], 'next', () => {}, { cwd: dir }), (e) => {
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /differs from HEAD in state\.json.*--recover/);
    return true;
  });
});

test('examples/plugin.js: four copies, each event logged once, by the primary of its term', async () => {
  const dir = tmp();
  const log = path.join(dir, 'realtime.log');
  const example = path.resolve(__dirname, '../../../examples/plugin.js');
  const { spawn } = require('node:child_process');
  const exits = [0, 1, 2, 3].map(
    (i) =>
      new Promise((resolve) => {
        const p = spawn(process.execPath, [example, path.join(dir, 'election'), log, `plugin-${i}`, '8'], {
          stdio: 'inherit',
        });
        p.on('close', resolve);
      }),
  );
  assert.deepEqual(await Promise.all(exits), [0, 0, 0, 0]);
  // Terms follow each other with rising epochs (a standby takes over when
  // the primary leaves), and only the term's primary logs in it.
  let primary = null;
  let logged = 0;
  const text = fs.readFileSync(log, 'utf8');
  for (const line of text.trim().split('\n')) {
    const m = /^primary (\S+) epoch (\d+)$/.exec(line);
    if (m) {
      assert.ok(primary === null || primary.epoch < Number(m[2]), text);
      primary = { name: m[1], epoch: Number(m[2]) };
    } else {
      assert.equal(line.split(' by ')[1], primary?.name, text);
      logged += 1;
    }
  }
  assert.ok(logged >= 3, `the primary logged its events:\n${text}`);
});
