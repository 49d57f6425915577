// The voter's flow in real headless Chromium (Debian's), against a real
// node and edge relay on 127.0.0.1: online and offline votes, delivery with
// and without Background Sync, two tabs, a change of vote, live results, a
// hostile proxy forging receipts, a closed poll, and no IndexedDB.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchFreshChromium } from './chromium.mjs';
import { readFile } from 'node:fs/promises';

import { cluster, eventually, getJson, postJson, scratch, startNode } from './harness.mjs';
import { hostileProxy } from './proxy.mjs';

const CONFIRM_MS = 30_000;

/** Opens the poll page and waits until its vote buttons work. */
async function openPoll(context, url) {
  const page = await context.newPage();
  await page.goto(url);
  await page.locator('button[data-vote="0"]:not([disabled])').waitFor({ timeout: 20_000 });
  return page;
}

async function voteFor(page, option) {
  await page.locator(`button[data-vote="${option}"]`).click();
}

const state = (page) => page.locator('[data-vote-state]').getAttribute('data-vote-state');

async function waitForState(page, expected, timeout = CONFIRM_MS) {
  await page.locator(`[data-vote-state="${expected}"]`).waitFor({ timeout });
}

const shownCount = async (page, option) =>
  Number(await page.locator(`[data-count="${option}"]`).textContent());

/** The worker controls the page, so a reload can be served offline. */
async function waitForWorker(page) {
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 20_000 });
}

describe('voter in Chromium', { concurrency: false, timeout: 240_000 }, () => {
  let c;
  let browser;

  before(async () => {
    c = await cluster();
  });

  after(async () => {
    await browser?.close();
    await c?.close();
  });

  test('an online vote is confirmed and counted once', async () => {
    browser = await launchFreshChromium();
    const page = await openPoll(browser.context, c.pollUrl());
    assert.equal(await shownCount(page, 1), 0);

    await voteFor(page, 1);
    await waitForState(page, 'confirmed');

    const tally = await c.tally();
    assert.deepEqual(tally.counts, [0, 1, 0]);
    assert.equal(tally.entries, 1);
    // The live counts include the vote once, not once more for the voter's own.
    await eventually('the page shows the vote once', async () => (await shownCount(page, 1)) === 1);

    // The voter keeps their signed vote and the node's receipt.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Save my receipts' }).click(),
    ]);
    const saved = JSON.parse(await readFile(await download.path(), 'utf8'));
    assert.equal(saved.length, 1);
    assert.equal(saved[0].vote.choice, 1);
    assert.equal(saved[0].receipt.poll, c.poll.id);
    const held = await getJson(c.node.url(`/v1/polls/${c.poll.id}/entries/${saved[0].receipt.entry}`));
    assert.equal(held.status, 200, 'the node holds the entry the receipt names');
    assert.deepEqual(held.body.receipt ?? held.body, saved[0].receipt);
    await browser.close();
    browser = undefined;
  });

  test("a poll's title and options are shown as text, never run as markup or script", async () => {
    browser = await launchFreshChromium();
    const page = await openPoll(browser.context, c.relay.url(`/poll/${c.hostile.id}`));
    assert.equal(await page.evaluate(() => window.pwned), undefined, 'no script of the poll ran');
    assert.equal(await page.locator('h1').textContent(), c.hostile.title);
    for (const [i, option] of c.hostile.options.entries()) {
      assert.equal(await page.locator(`#option-${i}`).textContent(), option);
    }
    assert.equal(await page.locator('main img, main b').count(), 0, 'no element came from the poll');
    assert.equal(await page.title(), `${c.hostile.title} · vote`);

    await voteFor(page, 2);
    await waitForState(page, 'confirmed');
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    await browser.close();
    browser = undefined;
  });

  test('a poll that needs a credential: the page earns one through the proof of work, then votes', async () => {
    browser = await launchFreshChromium();
    const page = await openPoll(browser.context, c.relay.url(`/poll/${c.members.id}`));
    const tally = async () => (await getJson(c.node.url(`/v1/polls/${c.members.id}/tally`))).body;
    const before = await tally();

    await voteFor(page, 0);
    await waitForState(page, 'confirmed');

    const after = await tally();
    assert.equal(after.counts[0], before.counts[0] + 1);
    assert.equal(after.entries, before.entries + 1);
    await browser.close();
    browser = undefined;
  });

  test('offline: the vote waits in the browser, the page reopens from the worker, and it is confirmed when the network is back', async () => {
    browser = await launchFreshChromium();
    const { context } = browser;
    const page = await openPoll(context, c.pollUrl());
    await waitForWorker(page);
    const before = await c.tally();

    await c.stopRelay();
    await context.setOffline(true);
    await voteFor(page, 2);
    await waitForState(page, 'pending', 10_000);

    await page.reload();
    await page.locator('button[data-vote="0"]:not([disabled])').waitFor({ timeout: 20_000 });
    assert.equal(await state(page), 'pending', 'the pending vote is shown after the reload');
    assert.equal(await shownCount(page, 2), before.counts[2] + 1, 'the pending vote is in the shown counts');

    await c.startRelay();
    await context.setOffline(false);
    await waitForState(page, 'confirmed');
    const tally = await c.tally();
    assert.equal(tally.counts[2], before.counts[2] + 1);
    assert.equal(tally.entries, before.entries + 1);
    await browser.close();
    browser = undefined;
  });

  test('a tab closed while its vote is pending: the service worker delivers it through Background Sync', async () => {
    browser = await launchFreshChromium();
    const { context } = browser;
    const page = await openPoll(context, c.pollUrl());
    await waitForWorker(page);
    const before = await c.tally();

    await c.stopRelay();
    await context.setOffline(true);
    await voteFor(page, 1);
    await waitForState(page, 'pending', 10_000);
    // The page asked the browser for a sync of the outbox.
    await page.waitForFunction(async () => {
      const registration = await navigator.serviceWorker.ready;
      return (await registration.sync.getTags()).includes('votemesh-outbox');
    }, null, { timeout: 10_000 });
    await page.close();
    const origin = new URL(c.pollUrl()).origin;
    assert.ok(context.pages().every((p) => !p.url().startsWith(origin)), 'no page of the site is open');

    await c.startRelay();
    await context.setOffline(false);
    // Chromium fires a sync when its own connectivity returns; the emulated
    // offline mode does not reach its sync scheduler, so the test fires the
    // registered sync as the browser would, from a blank tab.
    const blank = context.pages()[0] ?? await context.newPage();
    const cdp = await context.newCDPSession(blank);
    const registration = new Promise((resolve) => {
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const ours = registrations.find((r) => r.scopeURL.startsWith(origin) && !r.isDeleted);
        if (ours) resolve(ours.registrationId);
      });
    });
    await cdp.send('ServiceWorker.enable');
    const registrationId = await registration;
    await cdp.send('ServiceWorker.dispatchSyncEvent', {
      origin, registrationId, tag: 'votemesh-outbox', lastChance: false,
    });

    const tally = await eventually('the node holds the vote', async () => {
      const now = await c.tally();
      return now.entries === before.entries + 1 ? now : null;
    }, CONFIRM_MS);
    assert.equal(tally.counts[1], before.counts[1] + 1);

    const reopened = await openPoll(context, c.pollUrl());
    await waitForState(reopened, 'confirmed');
    await browser.close();
    browser = undefined;
  });

  test('without Background Sync the page still delivers the vote', async () => {
    browser = await launchFreshChromium();
    const { context } = browser;
    await context.addInitScript(() => {
      delete ServiceWorkerRegistration.prototype.sync;
    });
    const page = await openPoll(context, c.pollUrl());
    assert.equal(await page.evaluate(() => 'sync' in ServiceWorkerRegistration.prototype), false);
    const before = await c.tally();

    await c.stopRelay();
    await voteFor(page, 0);
    await waitForState(page, 'pending', 10_000);
    await c.startRelay();
    // No reload, no `online` event: the page's backoff timer delivers it.
    await waitForState(page, 'confirmed');
    const tally = await c.tally();
    assert.equal(tally.counts[0], before.counts[0] + 1);
    assert.equal(tally.entries, before.entries + 1);
    await browser.close();
    browser = undefined;
  });

  test('two tabs: both see the vote, it is counted once', async () => {
    browser = await launchFreshChromium();
    const { context } = browser;
    const first = await openPoll(context, c.pollUrl());
    const second = await openPoll(context, c.pollUrl());
    const before = await c.tally();

    await c.stopRelay();
    await voteFor(first, 1);
    await waitForState(first, 'pending', 10_000);
    await waitForState(second, 'pending', 10_000);
    await c.startRelay();
    // Both tabs try to deliver the same signed vote.
    await Promise.all([first, second].map((p) => p.evaluate(() => window.dispatchEvent(new Event('online')))));
    await waitForState(first, 'confirmed');
    await waitForState(second, 'confirmed');

    const tally = await c.tally();
    assert.equal(tally.counts[1], before.counts[1] + 1);
    assert.equal(tally.entries, before.entries + 1);
    assert.equal(tally.voters, before.voters + 1);
    await browser.close();
    browser = undefined;
  });

  test('a change of vote replaces the first one', async () => {
    browser = await launchFreshChromium();
    const page = await openPoll(browser.context, c.pollUrl());
    const before = await c.tally();

    await voteFor(page, 0);
    await waitForState(page, 'confirmed');
    await voteFor(page, 2);
    await page.locator('li.chosen button[data-vote="2"]').waitFor({ timeout: 10_000 });
    await waitForState(page, 'confirmed');
    assert.equal(await page.locator('li.chosen').count(), 1, 'one option is shown as chosen');

    const tally = await c.tally();
    assert.equal(tally.entries, before.entries + 2, 'both signed entries are kept');
    assert.equal(tally.voters, before.voters + 1, 'one voter');
    assert.equal(tally.counts[0], before.counts[0], 'the first choice no longer counts');
    assert.equal(tally.counts[2], before.counts[2] + 1);
    await browser.close();
    browser = undefined;
  });

  test('where WebSockets do not get through, the results page follows the counts over Server-Sent Events', async () => {
    browser = await launchFreshChromium();
    const { context } = browser;
    const results = await context.newPage();
    // A WebSocket that never opens, as behind a proxy that refuses upgrades.
    await results.addInitScript(() => {
      window.WebSocket = class {
        constructor() {
          setTimeout(() => this.onclose?.(new CloseEvent('close', { code: 1006 })), 0);
        }
        close() {}
      };
    });
    await results.goto(c.resultsUrl());
    await results.locator('footer', { hasText: 'live (Server-Sent Events)' }).waitFor({ timeout: 20_000 });
    const shownBefore = await shownCount(results, 0);

    const voter = await openPoll(context, c.pollUrl());
    await voteFor(voter, 0);
    await waitForState(voter, 'confirmed');
    await results.waitForFunction(
      (n) => Number(document.querySelector('[data-count="0"]').textContent) === n,
      shownBefore + 1,
      { timeout: 5_000, polling: 20 },
    );
    await browser.close();
    browser = undefined;
  });

  test('the results page shows a new vote within a second', async () => {
    browser = await launchFreshChromium();
    const { context } = browser;
    const results = await context.newPage();
    await results.goto(c.resultsUrl());
    await results.locator('footer', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    const shownBefore = await shownCount(results, 1);

    const voter = await openPoll(context, c.pollUrl());
    await voteFor(voter, 1);
    await waitForState(voter, 'confirmed');
    const confirmedAt = Date.now();
    await results.waitForFunction(
      (n) => Number(document.querySelector('[data-count="1"]').textContent) === n,
      shownBefore + 1,
      { timeout: 5_000, polling: 20 },
    );
    const lag = Date.now() - confirmedAt;
    console.log(`results page updated ${lag} ms after the receipt`);
    assert.ok(lag < 1_000, `results page took ${lag} ms`);
    await browser.close();
    browser = undefined;
  });

  test("a hostile proxy's receipts, signed by a key of its own, confirm nothing; the real node's do", async () => {
    const rogueDir = await scratch();
    // The proxy's own node: its receipts verify, but its key is no node of the relay's.
    const rogue = await startNode(rogueDir.dir);
    let proxy;
    try {
      const created = await postJson(rogue.url('/v1/polls'), c.poll);
      assert.ok([200, 201].includes(created.status), JSON.stringify(created.body));
      proxy = await hostileProxy(() => c.relay.url(), rogue.url());
      const nodeKey = (await getJson(c.node.url('/v1/node'))).body.node;
      const rogueKey = (await getJson(rogue.url('/v1/node'))).body.node;
      assert.notEqual(nodeKey, rogueKey);
      const listed = await getJson(c.relay.url('/v1/nodes'));
      assert.deepEqual(listed.body.nodes.map((n) => n.key), [nodeKey], 'the relay names its node');

      browser = await launchFreshChromium();
      const page = await openPoll(browser.context, proxy.url(`/poll/${c.poll.id}`));
      const before = await c.tally();

      await voteFor(page, 2);
      await eventually('the proxy forged receipts for two attempts', async () => proxy.forged >= 2, 20_000);
      await page.locator('[data-vote-state="pending"]', { hasText: "not one of this poll's nodes" })
        .waitFor({ timeout: 10_000 });

      assert.equal(await state(page), 'pending', 'a stranger key never confirms the vote');
      assert.equal((await getJson(rogue.url(`/v1/polls/${c.poll.id}/tally`))).body.entries, 1,
        "the vote reached only the proxy's node");
      const meanwhile = await c.tally();
      assert.equal(meanwhile.entries, before.entries, "the relay's node has not got it");
      assert.deepEqual(meanwhile.counts, before.counts);
      assert.ok(await page.getByRole('button', { name: 'Save my receipts' }).isDisabled(),
        'no receipt to save');
      assert.equal(await page.locator('li.chosen button[data-vote="2"]').count(), 1,
        'the pending vote is shown as the choice');

      proxy.passThrough();
      await page.evaluate(() => window.dispatchEvent(new Event('online')));
      await waitForState(page, 'confirmed');

      assert.ok(proxy.passed >= 1);
      const tally = await c.tally();
      assert.equal(tally.counts[2], before.counts[2] + 1);
      assert.equal(tally.entries, before.entries + 1);
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Save my receipts' }).click(),
      ]);
      const saved = JSON.parse(await readFile(await download.path(), 'utf8'));
      assert.equal(saved.length, 1);
      assert.equal(saved[0].receipt.node, nodeKey, "the receipt is the relay's node's");
    } finally {
      await browser?.close();
      browser = undefined;
      await proxy?.close();
      await rogue.kill();
      await rogueDir.cleanup();
    }
  });

  test("a proxy's 403 page leaves the vote pending; a refusal is told in words and the refused option is not shown as chosen", async () => {
    const proxy = await hostileProxy(() => c.relay.url(), 'http://127.0.0.1:9');
    try {
      proxy.mode = 'html403';
      browser = await launchFreshChromium();
      const page = await openPoll(browser.context, proxy.url(`/poll/${c.poll.id}`));

      await voteFor(page, 1);
      await eventually('the proxy refused two attempts', async () => proxy.answered >= 2, 20_000);

      assert.equal(await state(page), 'pending', 'a 403 page is not a refusal of the vote');
      assert.equal(await page.locator('li.chosen button[data-vote="1"]').count(), 1);

      proxy.mode = 'refuse';
      await page.evaluate(() => window.dispatchEvent(new Event('online')));
      await waitForState(page, 'rejected', 15_000);

      const text = await page.locator('[data-vote-state="rejected"]').textContent();
      assert.match(text, /outside the voting period, from 1 January 1970, 00:00 UTC to 1 January 2100, 00:00 UTC/);
      assert.ok(!/\d{10,}/.test(text), `no raw milliseconds: ${text}`);
      assert.equal(await page.locator('li.chosen').count(), 0, 'the refused option is not the choice');
      assert.ok(await page.getByRole('button', { name: 'Save my receipts' }).isDisabled());
    } finally {
      await browser?.close();
      browser = undefined;
      await proxy.close();
    }
  });

  test('a closed poll: the buttons are off and the page says when it closed, in words', async () => {
    browser = await launchFreshChromium();
    const page = await browser.context.newPage();
    await page.goto(c.relay.url(`/poll/${c.closed.id}`));
    // Hydrated: the page follows the live counts.
    await page.locator('footer', { hasText: 'live' }).waitFor({ timeout: 20_000 });

    const line = await page.locator('#window').textContent();
    assert.equal(line, 'This poll closed on 14 November 2023, 22:13 UTC: voting is over.');
    assert.equal(await page.locator('button[data-vote]').count(), 3);
    assert.equal(await page.locator('button[data-vote]:not([disabled])').count(), 0);
    assert.equal(await page.locator('button[data-vote="0"]').getAttribute('aria-describedby'), 'window');
    assert.ok(await page.getByRole('button', { name: 'Save my receipts' }).isDisabled());
    assert.ok(!(await page.locator('main').textContent()).includes('1700000000000'), 'no raw milliseconds');
    await browser.close();
    browser = undefined;
  });

  test('without IndexedDB the pages say the voter\'s own votes are unavailable, and live counts still work', async () => {
    browser = await launchFreshChromium();
    const { context } = browser;
    const results = await context.newPage();
    await results.addInitScript(() => {
      Object.defineProperty(window, 'indexedDB', {
        configurable: true,
        get() { throw new DOMException('The user denied permission to access the database.', 'SecurityError'); },
      });
    });
    await results.goto(c.resultsUrl());
    await results.locator('footer', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    await results.locator('[role="status"]', { hasText: 'Your own votes are not available' })
      .waitFor({ timeout: 10_000 });
    const shownBefore = await shownCount(results, 0);

    const voter = await openPoll(context, c.pollUrl());
    await voteFor(voter, 0);
    await waitForState(voter, 'confirmed');
    await results.waitForFunction(
      (n) => Number(document.querySelector('[data-count="0"]').textContent) === n,
      shownBefore + 1,
      { timeout: 5_000, polling: 50 },
    );

    // The poll page says so too, and does not offer a vote it could not keep.
    const blocked = await context.newPage();
    await blocked.addInitScript(() => {
      Object.defineProperty(window, 'indexedDB', {
        configurable: true,
        get() { throw new DOMException('The user denied permission to access the database.', 'SecurityError'); },
      });
    });
    await blocked.goto(c.pollUrl());
    await blocked.locator('[role="alert"]', { hasText: 'voting is off' }).waitFor({ timeout: 20_000 });
    await blocked.locator('footer', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    assert.equal(await blocked.locator('button[data-vote]:not([disabled])').count(), 0);
    await browser.close();
    browser = undefined;
  });

  test('the poll and results pages load and vote with no console warning or error', async () => {
    browser = await launchFreshChromium();
    const said = [];
    const listen = (page) => {
      page.on('console', (msg) => {
        if (msg.type() === 'warning' || msg.type() === 'error') said.push(`${msg.type()}: ${msg.text()}`);
      });
      page.on('pageerror', (err) => said.push(`uncaught: ${err.message}`));
    };
    const results = await browser.context.newPage();
    listen(results);
    await results.goto(c.resultsUrl());
    await results.locator('footer', { hasText: 'live' }).waitFor({ timeout: 20_000 });
    const voter = await browser.context.newPage();
    listen(voter);
    await voter.goto(c.pollUrl());
    await voter.locator('button[data-vote="1"]:not([disabled])').waitFor({ timeout: 20_000 });
    await voteFor(voter, 1);
    await waitForState(voter, 'confirmed');

    assert.deepEqual(said, []);
    await browser.close();
    browser = undefined;
  });
});
