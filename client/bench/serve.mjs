// A static file server for the benchmark: one directory, 127.0.0.1 only,
// gzip (level 6, zlib's default, the level tower-http's compression layer uses
// by default) for every compressible type when the browser accepts it.
//
//   node serve.mjs DIR [--port N]     prints the URL, serves until killed
//
// Headers are kept to what a real static host sends (type, length, encoding,
// vary, cache-control), since response headers count in the bytes measured.

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};
const COMPRESSIBLE = /^(text\/|application\/(json|wasm|manifest\+json)|image\/svg\+xml)/;

/**
 * Serves `root` on 127.0.0.1. Resolves once listening.
 *
 * @param {string} root
 * @param {{port?: number, gzipLevel?: number}} [options] port 0 picks a free one
 * @returns {Promise<{url: string, close: () => Promise<void>, stats: {requests: number, bodyBytes: number}}>}
 */
export async function serveStatic(root, { port = 0, gzipLevel = 6 } = {}) {
  const base = resolve(root);
  const gzipped = new Map();
  // Body bytes sent, for cross-checking the browser's count (which adds headers).
  const stats = { requests: 0, bodyBytes: 0 };

  const server = createServer(async (req, res) => {
    stats.requests += 1;
    const file = await findFile(base, req.url ?? '/');
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(file ? 405 : 404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(file ? 'method not allowed\n' : 'not found\n');
      return;
    }
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    let body = await readFile(file);
    const headers = {
      'content-type': type,
      // Hashed assets (SvelteKit's _app/immutable/, Next.js's _next/static/)
      // may be cached for good; the page itself is revalidated.
      'cache-control': /\/(immutable|_next\/static)\//.test(req.url ?? '')
        ? 'public, max-age=31536000, immutable'
        : 'no-cache',
    };
    if (COMPRESSIBLE.test(type)) {
      headers.vary = 'accept-encoding';
      if (/\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
        if (!gzipped.has(file)) gzipped.set(file, gzipSync(body, { level: gzipLevel }));
        body = gzipped.get(file);
        headers['content-encoding'] = 'gzip';
      }
    }
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    stats.bodyBytes += body.length;
    res.end(body);
  });

  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', ok);
  });
  const { port: bound } = server.address();
  return {
    url: `http://127.0.0.1:${bound}/`,
    stats,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// Maps a request path to a file under `base`: the file itself, DIR/index.html,
// or PATH.html (how the static adapter names prerendered pages). Never leaves
// `base`.
async function findFile(base, rawUrl) {
  let path;
  try {
    path = decodeURIComponent(new URL(rawUrl, 'http://x').pathname);
  } catch {
    return null;
  }
  const full = resolve(join(base, path));
  if (full !== base && !full.startsWith(base + sep)) return null;
  for (const candidate of [full, join(full, 'index.html'), `${full}.html`]) {
    try {
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  return null;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const portAt = args.indexOf('--port');
  const dir = args.find((a, i) => !a.startsWith('--') && (portAt < 0 || i !== portAt + 1));
  if (!dir) {
    console.error('usage: node serve.mjs DIR [--port N]');
    process.exit(2);
  }
  const port = portAt >= 0 ? Number(args[portAt + 1]) : 0;
  if (!Number.isInteger(port) || port < 0) {
    console.error(`serve: bad --port ${args[portAt + 1]}`);
    process.exit(2);
  }
  const { url } = await serveStatic(dir, { port });
  console.log(url);
}
