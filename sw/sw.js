// votemesh service worker. A classic script (not a module), so it runs where
// module workers do not.
//
// - install: precache the app shell listed in /precache.json
//   ({"version": "...", "urls": [...], "immutable": [...]}) into
//   "votemesh-shell-<version>", with this worker's own wasm; then
//   skipWaiting. Immutable (content-addressed) files may come from the HTTP
//   cache, so a first visit does not download the app twice.
// - activate: delete every other "votemesh-shell-" cache; clients.claim();
//   keep the pages already open (the page of a first visit was loaded before
//   this worker existed), so they reopen offline.
// - fetch: /v1/ (the API) is never touched; navigations and /.perseus/page/
//   data go to the network first, are cached when they succeed and served
//   from the cache when the network fails or stalls; everything else is
//   served from the cache when present (precached assets, /.perseus/ files,
//   which are also cached on first use), else from the network.
// - sync (tag "votemesh-outbox") and message {type: "flush"}: flush the
//   voter's outbox in wasm (votemesh_sw.js + votemesh_sw_bg.wasm, the
//   wasm-bindgen --target no-modules output of the votemesh-sw crate). The
//   flush posts {type: "flushed", ...} on the "votemesh-outbox"
//   BroadcastChannel; a page that sent the message also gets that report back.
'use strict';

// Replaced by `votemesh-client publish` with a hash of this build, so that every new build
// changes this file (the browser then installs the new worker) and the URLs
// of the wasm glue (so no HTTP cache can pair an old glue with a new wasm).
const BUILD = 'dev';

const SHELL_PREFIX = 'votemesh-shell-';
const META_CACHE = 'votemesh-meta';
const CURRENT_KEY = '/__votemesh/current-shell';
const TAG = 'votemesh-outbox';
const GLUE_URL = '/votemesh_sw.js?v=' + BUILD;
const WASM_URL = '/votemesh_sw_bg.wasm?v=' + BUILD;
// A navigation that has not answered by then is served from the cache, if
// the cache has it (a "lie-fi" connection must not hang the page).
const NETWORK_TIMEOUT_MS = 4000;

importScripts(GLUE_URL);

// ---- the app shell cache

let shellName = null;

// The cache this worker's install filled. Kept in a small meta cache, since
// the worker may be stopped and restarted between events.
async function currentShell() {
  if (shellName) return shellName;
  const meta = await caches.open(META_CACHE);
  const hit = await meta.match(CURRENT_KEY);
  shellName = hit ? await hit.text() : null;
  return shellName;
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const reply = await fetch('/precache.json', { cache: 'no-store' });
    if (!reply.ok) throw new Error('precache.json: HTTP ' + reply.status);
    const manifest = await reply.json();
    if (typeof manifest.version !== 'string' || !Array.isArray(manifest.urls)) {
      throw new Error('precache.json must be {"version": string, "urls": [...]}');
    }

    const name = SHELL_PREFIX + manifest.version;
    const cache = await caches.open(name);
    // "reload": a fresh copy, never one from the HTTP cache of an older
    // build, except for content-addressed files, which cannot be stale.
    const immutable = new Set(Array.isArray(manifest.immutable) ? manifest.immutable : []);
    const urls = manifest.urls.concat([WASM_URL]);
    await cache.addAll(urls.map((url) =>
      new Request(url, { cache: immutable.has(url) ? 'default' : 'reload' })));

    const meta = await caches.open(META_CACHE);
    await meta.put(CURRENT_KEY, new Response(name));
    shellName = name;
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const keep = await currentShell();
    const names = await caches.keys();
    await Promise.all(names
      .filter((name) => name.startsWith(SHELL_PREFIX) && name !== keep)
      .map((name) => caches.delete(name)));
    await self.clients.claim();
    await keepOpenPages();
  })());
});

// The pages open in windows of this origin, fetched again into the shell
// cache. Failures are left alone: the next visit caches the page anyway.
async function keepOpenPages() {
  const windows = await self.clients.matchAll({ type: 'window' });
  await Promise.all(windows.map(async (client) => {
    const url = new URL(client.url);
    if (url.origin !== self.location.origin || url.pathname.startsWith('/v1/')) return;
    try {
      const request = new Request(url.pathname + url.search);
      const response = await fetch(request);
      if (storable(response)) await keep(request, response);
    } catch (error) {
      // Offline already: nothing to keep now.
    }
  }));
}

function storable(response) {
  // A redirected response cannot answer a navigation; opaque and error
  // responses are not worth keeping.
  return response.ok && response.type === 'basic' && !response.redirected;
}

async function keep(request, response) {
  const name = await currentShell();
  if (!name) return;
  const cache = await caches.open(name);
  await cache.put(request, response);
}

function offlinePage() {
  const html = '<!doctype html><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<title>Offline</title><p>You are offline and this page was not saved on ' +
    'this device. Votes already cast here are kept and will be sent when the ' +
    'connection returns.</p>';
  return new Response(html, {
    status: 503,
    headers: { 'content-type': 'text/html; charset=utf-8' },
  });
}

async function networkFirst(event, request) {
  const network = fetch(request);
  // Registered before the page reads the body, so the clone still can.
  event.waitUntil(network
    .then((response) => (storable(response) ? keep(request, response.clone()) : null))
    .catch(() => null));

  const stalled = new Promise((resolve) => setTimeout(resolve, NETWORK_TIMEOUT_MS, null));
  try {
    const first = await Promise.race([network, stalled]);
    if (first) return first;
    const hit = await caches.match(request, { ignoreVary: true });
    return hit || await network;
  } catch (error) {
    const hit = await caches.match(request, { ignoreVary: true });
    if (hit) return hit;
    if (request.mode === 'navigate') return offlinePage();
    throw error;
  }
}

async function cacheFirst(event, request, store) {
  const hit = await caches.match(request, { ignoreVary: true });
  if (hit) return hit;
  const response = await fetch(request);
  if (store && storable(response)) {
    event.waitUntil(keep(request, response.clone()).catch(() => null));
  }
  return response;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  // The API (votes, counts, live streams) always goes to the network as is.
  if (url.pathname.startsWith('/v1/')) return;

  if (request.mode === 'navigate' || url.pathname.startsWith('/.perseus/page/')) {
    event.respondWith(networkFirst(event, request));
    return;
  }
  event.respondWith(cacheFirst(event, request, url.pathname.startsWith('/.perseus/')));
});

// ---- the outbox

let wasmReady = null;

// Compiled on first flush only, so fetch events never wait for it.
function loadWasm() {
  if (!wasmReady) {
    wasmReady = caches.match(WASM_URL)
      .then((hit) => hit || fetch(WASM_URL))
      .then((response) => wasm_bindgen({ module_or_path: response }))
      .catch((error) => {
        wasmReady = null;
        throw error;
      });
  }
  return wasmReady;
}

async function flushOnce() {
  await loadWasm();
  return wasm_bindgen.flush(self.location.origin);
}

// One flush at a time in this worker; a request during one queues one more,
// so votes cast meanwhile are sent too.
let running = null;
let queued = null;

function flush() {
  if (!running) {
    running = flushOnce().finally(() => {
      running = null;
    });
    return running;
  }
  if (!queued) {
    queued = running.catch(() => null).then(() => {
      queued = null;
      return flush();
    });
  }
  return queued;
}

self.addEventListener('sync', (event) => {
  if (event.tag !== TAG) return;
  // Rejecting asks the browser to fire the sync again later.
  event.waitUntil(flush().then((report) => {
    if (report.pending > 0) {
      throw new Error(report.pending + ' votes still pending');
    }
  }));
});

self.addEventListener('message', (event) => {
  const data = event.data;
  if (!data || data.type !== 'flush') return;
  event.waitUntil(flush()
    .then((report) => {
      if (event.source) event.source.postMessage(report);
    })
    .catch((error) => {
      console.warn('votemesh outbox flush failed:', error);
      if (event.source) {
        event.source.postMessage({ type: 'flush-failed', message: String(error) });
      }
    }));
});
