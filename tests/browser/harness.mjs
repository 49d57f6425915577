// Real votemesh processes on 127.0.0.1 for the browser tests: a regional node
// and an edge relay that renders the voter's pages from the browser build.
//
// Needs VOTEMESH_BIN_DIR (where votemesh-node and votemesh-relay were built)
// and VOTEMESH_WEB_BUILD (the output of client/build.sh); ./run.sh sets both.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const START_TIMEOUT_MS = 20_000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests through tests/browser/run.sh`);
  }
  return value;
}

export const binDir = () => required('VOTEMESH_BIN_DIR');
export const webBuild = () => required('VOTEMESH_WEB_BUILD');

/** A signed test poll (crdt/tests/browser_fixture.rs keeps them valid). */
export async function fixturePoll(name = 'poll.json') {
  return JSON.parse(await readFile(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));
}

/** A free TCP port on 127.0.0.1, so a restarted relay keeps its origin. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A process that printed its `{"event":"listening","addr":...}` line. */
class Proc {
  constructor(child, addr, log) {
    this.child = child;
    this.addr = addr;
    this.log = log;
  }

  url(path = '') {
    return `http://${this.addr}${path}`;
  }

  /** SIGKILL: nothing of the process's shutdown runs. */
  async kill() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

async function startProc(bin, args, log) {
  await access(bin).catch(() => {
    throw new Error(`${bin} is missing: build it first (tests/browser/run.sh does)`);
  });
  const logFile = createWriteStream(log, { flags: 'a' });
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(logFile);
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${bin}: no listening line in time; see ${log}`)), START_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited (${code}) before listening; see ${log}`));
    });
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
  const event = JSON.parse(first);
  if (event.event !== 'listening') throw new Error(`${bin}: unexpected first line ${first}`);
  return new Proc(child, event.addr, log);
}

/** A scratch directory removed by `cleanup()`. */
export async function scratch() {
  const dir = await mkdtemp(join(tmpdir(), 'votemesh-browser-'));
  // A page rendering started by a relay just killed may still be writing.
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }) };
}

export async function startNode(dir) {
  return startProc(join(binDir(), 'votemesh-node'),
    ['run', '--data-dir', join(dir, 'node'), '--listen', '127.0.0.1:0'],
    join(dir, 'node.log'));
}

/**
 * A relay on `port` in front of `node`, rendering pages into `dir/site`. It
 * holds the registrar key of fixtures/credential-poll.json (seed 0xbb x 32)
 * and asks a light proof of work (12 bits) before it issues a credential.
 */
export async function startRelay(dir, node, port) {
  const registrarKey = join(dir, 'registrar.key');
  await writeFile(registrarKey, 'bb'.repeat(32));
  return startProc(join(binDir(), 'votemesh-relay'), [
    '--registrar-key', registrarKey,
    '--pow-bits', '12',
    '--listen', `127.0.0.1:${port}`,
    '--node', node.url(),
    '--web-dir', join(dir, 'site'),
    '--pages', webBuild(),
    '--publish-interval-secs', '2',
    '--health-interval-ms', '200',
    '--ip-rate', '100000', '--ip-burst', '100000',
    '--poll-rate', '100000', '--poll-burst', '100000',
  ], join(dir, 'relay.log'));
}

export async function getJson(url) {
  const response = await fetch(url);
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: text };
  }
}

export async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually(what, check, timeoutMs = 20_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last})`);
}

/**
 * A node with the fixture poll and a relay serving its pages, ready for a
 * browser: `close()` stops both and removes their files.
 */
export async function cluster() {
  const { dir, cleanup } = await scratch();
  const node = await startNode(dir);
  const poll = await fixturePoll();
  // Markup and script in its title and options: shown as text, never run.
  const hostile = await fixturePoll('hostile-poll.json');
  // Needs a credential from the relay's registrar.
  const members = await fixturePoll('credential-poll.json');
  // Closed on 14 November 2023: takes no more votes.
  const closed = await fixturePoll('closed-poll.json');
  for (const p of [poll, hostile, members, closed]) {
    const created = await postJson(node.url('/v1/polls'), p);
    if (created.status !== 201 && created.status !== 200) {
      throw new Error(`creating a poll: ${created.status} ${JSON.stringify(created.body)}`);
    }
  }
  const port = await freePort();
  let relay = await startRelay(dir, node, port);
  await eventually('the poll pages are rendered', async () =>
    (await fetch(relay.url(`/poll/${poll.id}`))).status === 200
    && (await fetch(relay.url(`/poll/${hostile.id}`))).status === 200);
  const c = {
    dir, node, poll, hostile, members, closed, port,
    get relay() { return relay; },
    pollUrl: () => relay.url(`/poll/${poll.id}`),
    resultsUrl: () => relay.url(`/results/${poll.id}`),
    tally: async () => (await getJson(node.url(`/v1/polls/${poll.id}/tally`))).body,
    stopRelay: async () => relay.kill(),
    startRelay: async () => { relay = await startRelay(dir, node, port); },
    close: async () => {
      await relay.kill();
      await node.kill();
      await cleanup();
    },
  };
  return c;
}
