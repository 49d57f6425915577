// Debian's Chromium driven by playwright-core, always with a fresh profile.
//
// playwright-core never downloads a browser; the one used is /usr/bin/chromium
// (Debian's `chromium` package), or $VOTEMESH_CHROMIUM. Browser end-to-end tests
// and client/bench both launch through here so that they run the same browser
// the same way.

import { access, constants, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.VOTEMESH_CHROMIUM || '/usr/bin/chromium';

// --headless is also what `headless: true` asks for; it is listed so the full
// command line is visible in one place. Background networking, component
// updates and sync are off so the browser makes no request the page did not
// ask for (the network here reaches 127.0.0.1 only, and a benchmark must not
// count or wait for the browser's own traffic).
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/**
 * Starts Chromium with a new, empty user-data-dir (so an empty HTTP cache, no
 * service worker, no cookies) and returns its single browser context.
 * `close()` stops the browser and deletes the profile.
 *
 * @param {import('playwright-core').BrowserContextOptions} [contextOptions]
 * @returns {Promise<{context: import('playwright-core').BrowserContext, profileDir: string, close: () => Promise<void>}>}
 */
export async function launchFreshChromium(contextOptions = {}) {
  try {
    await access(CHROMIUM_PATH, constants.X_OK);
  } catch {
    throw new Error(
      `no Chromium at ${CHROMIUM_PATH}: install Debian's package (apt-get install chromium) or set VOTEMESH_CHROMIUM`,
    );
  }
  const profileDir = await mkdtemp(join(tmpdir(), 'votemesh-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      ...contextOptions,
    });
  } catch (err) {
    await rm(profileDir, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    profileDir,
    async close() {
      await context.close();
      await rm(profileDir, { recursive: true, force: true });
    },
  };
}
