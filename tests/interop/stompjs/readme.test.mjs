// The README's JavaScript snippets, run as a newcomer runs them: copied as they are (only the
// port differs, since each test server listens on a port of its own) into a Node process against
// a server under the default configuration. What people copy first must work.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { brokerTest, until } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const interopDir = path.resolve(here, '..');
const readmePath = path.resolve(interopDir, '..', '..', 'README.md');

/** The ```js blocks of the README section headed `## ${heading}`. */
function jsBlocks(readme, heading) {
  const start = readme.indexOf(`\n## ${heading}\n`);
  assert.notEqual(start, -1, `README has no "## ${heading}" section`);
  const next = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, next === -1 ? undefined : next);
  const blocks = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map(m => m[1]);
  assert.ok(blocks.length > 0, `no js block under "## ${heading}"`);
  return blocks;
}

brokerTest('the README quick start and job snippet work as written', async ctx => {
  const readme = await readFile(readmePath, 'utf8');
  const [quickStart] = jsBlocks(readme, 'Quick start');
  const [jobs] = jsBlocks(readme, 'Jobs');
  assert.match(quickStart, /ws:\/\/127\.0\.0\.1:15674\/ws/, 'the quick start uses the default address');

  const server = await ctx.server();
  const program = [
    // What a browser provides and Node 20 does not: a WebSocket class.
    "import WebSocket from 'ws';",
    'Object.assign(globalThis, { WebSocket });',
    quickStart.replace('ws://127.0.0.1:15674/ws', server.wsUrl),
    // The job snippet runs once connected, with a `render` that prints what it is given.
    'const render = (event) => console.log("render", JSON.stringify(event));',
    'const quickStartOnConnect = client.onConnect;',
    'client.onConnect = (frame) => {',
    '  quickStartOnConnect(frame);',
    jobs,
    '};',
    'client.onStompError = (frame) => console.log("STOMP ERROR", frame.headers.message);',
  ].join('\n');

  const child = spawn(process.execPath, ['--input-type=module', '--eval', program], {
    cwd: interopDir, // bare imports resolve from tests/interop/node_modules
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ctx.t.after(() => child.kill('SIGKILL'));
  const lines = [];
  createInterface({ input: child.stdout }).on('line', line => lines.push(line));
  const errors = [];
  createInterface({ input: child.stderr }).on('line', line => errors.push(line));
  const report = () => `stdout:\n${lines.join('\n')}\nstderr:\n${errors.join('\n')}`;

  try {
    await until(
      () => lines.some(l => l.startsWith('render') && l.includes('"JOB_COMPLETED"')),
      'the demo job to complete through the README snippets',
    );
  } catch (error) {
    throw new Error(`${error.message}\n${report()}`);
  }
  assert.ok(
    lines.includes('/topic/news/today {"headline":"hello"}'),
    `the quick start's own message did not come back:\n${report()}`,
  );
  assert.ok(lines.some(l => l.startsWith('my jobs:')), `no progress on /user/queue/progress:\n${report()}`);
  assert.ok(!lines.some(l => l.startsWith('STOMP ERROR')), report());
  assert.equal(child.exitCode, null, `the snippet process died:\n${report()}`);
});
