// A hostile HTTP proxy on 127.0.0.1 in front of the edge relay, for the
// browser tests: it serves the relay's real pages, scripts and live counts,
// but answers votes itself with a receipt from a node of its own, validly
// signed by a key that is not one of the relay's nodes, so the vote never
// reaches them. `passThrough()` turns it into an honest proxy.
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
    forging: true,
    forged: 0,
    passed: 0,
    server: null,
    url: (path = '') => `http://127.0.0.1:${proxy.server.address().port}${path}`,
    passThrough() { proxy.forging = false; },
    close: () => new Promise((resolve) => {
      proxy.server.closeAllConnections();
      proxy.server.close(resolve);
    }),
  };

  proxy.server = createServer((req, res) => {
    const vote = req.method === 'POST' && VOTE_PATH.test(req.url.split('?')[0]);
    const forge = vote && proxy.forging;
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
