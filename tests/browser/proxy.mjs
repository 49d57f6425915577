// A hostile HTTP proxy on 127.0.0.1 in front of the edge relay, for the
// browser tests: it serves the relay's real pages, scripts and live counts,
// but answers votes itself, as `mode` says:
//
// - `forge`: with a receipt from a node of its own, validly signed by a key
//   that is not one of the relay's nodes, so the vote never reaches them;
// - `html403`: with a 403 HTML page, as a filtering gateway would;
// - `refuse`: with a node's JSON refusal `outside_window` (422);
// - `pass`: not at all: votes go to the relay (`passThrough()`).
//
// WebSocket upgrades are not proxied (the page falls back to Server-Sent
// Events, which are).

import { createServer, request } from 'node:http';

const VOTE_PATH = /^\/v1\/polls\/[0-9a-f]{64}\/votes$/;

/**
 * @param {() => string} relayUrl the relay's base URL (read per request)
 * @param {string} rogueUrl the base URL of the proxy's own node
 */
export async function hostileProxy(relayUrl, rogueUrl) {
  const proxy = {
    mode: 'forge',
    forged: 0,
    answered: 0,
    passed: 0,
    server: null,
    url: (path = '') => `http://127.0.0.1:${proxy.server.address().port}${path}`,
    passThrough() { proxy.mode = 'pass'; },
    close: () => new Promise((resolve) => {
      proxy.server.closeAllConnections();
      proxy.server.close(resolve);
    }),
  };

  proxy.server = createServer((req, res) => {
    const vote = req.method === 'POST' && VOTE_PATH.test(req.url.split('?')[0]);
    if (vote && proxy.mode === 'html403') {
      proxy.answered += 1;
      res.writeHead(403, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>Forbidden</title><h1>Access denied by policy</h1>');
      return;
    }
    if (vote && proxy.mode === 'refuse') {
      proxy.answered += 1;
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: {
        code: 'outside_window',
        message: 'cast_at 1700000000001 is outside the poll window [1000, 1700000000000)',
      } }));
      return;
    }
    const forge = vote && proxy.mode === 'forge';
    if (forge) proxy.forged += 1;
    if (vote && !forge) proxy.passed += 1;
    const target = new URL(req.url, forge ? rogueUrl : relayUrl());
    const headers = { ...req.headers, host: target.host };
    const upstream = request(target, { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<h1>Bad gateway</h1>');
    });
    req.pipe(upstream);
  });

  await new Promise((resolve, reject) => {
    proxy.server.once('error', reject);
    proxy.server.listen(0, '127.0.0.1', resolve);
  });
  return proxy;
}
