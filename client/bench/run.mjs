// The poll page beside minimal SvelteKit and Next.js pages doing the same:
// first-visit bytes and time to a working vote control, in headless Chromium
// (slow 3G, CPU 4x). Prints one table.
//
//   node client/bench/run.mjs [PERSEUS_URL | --perseus-dir DIR] [--runs N]
//       [--profile devtools-3g|rtt400-3g] [--cpu-rate R] [--sveltekit-dir DIR]
//       [--nextjs-dir DIR] [--perseus-label TEXT] [--json FILE]
//
// Without a Perseus page it measures SvelteKit and Next.js alone and says so.
// It installs tests/browser (playwright-core) if needed, builds the SvelteKit
// page with build-sveltekit.sh and the Next.js page with build-nextjs.sh (both
// outside the clone) unless --sveltekit-dir / --nextjs-dir name built ones,
// serves them (and --perseus-dir) with serve.mjs on 127.0.0.1, and measures
// the pages in turn, run by run, so that a slow spell of the machine falls on
// all of them. README.md beside this file defines every figure.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { serveStatic } from './serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const browserPackage = resolve(here, '../../tests/browser');

// Figures quoted in the issue; their profile is discussed in README.md.
const REFERENCE = [
  { page: 'SvelteKit 3.2 static adapter (issue)', bytes: '35.8 KB', usable: '2.35 s' },
  { page: 'Next.js 16 static export (issue)', bytes: '139 KB', usable: '4.11 s' },
];

function ensureBrowserPackage() {
  if (existsSync(join(browserPackage, 'node_modules/playwright-core/package.json'))) return;
  console.error(`run: npm ci in ${browserPackage}`);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: browserPackage,
    stdio: ['ignore', 2, 'inherit'],
  });
}

// Runs one of the build scripts here; it prints the built directory last on stdout.
function build(script) {
  const out = execFileSync('bash', [join(here, script)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  return out.trim().split('\n').pop();
}

// The version of `pkg` installed beside a built directory (both build scripts
// build into app/<dir> next to app/node_modules); null for a directory given
// on the command line that has none.
function versionBeside(buildDir, pkg) {
  try {
    return JSON.parse(readFileSync(join(buildDir, '../node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

async function main() {
  ensureBrowserPackage();
  const bench = await import('./measure.mjs');
  let args;
  try {
    args = bench.parseArgs(process.argv.slice(2), { extra: ['--perseus-dir', '--perseus-label', '--sveltekit-dir', '--nextjs-dir', '--json'] });
  } catch (err) {
    console.error(`run: ${err.message}`);
    process.exit(2);
  }
  const profile = bench.PROFILES[args.profile];
  const options = { profile, cpuRate: args.cpuRate, timeoutMs: args.timeoutMs };

  const svelteDir = args.sveltekitDir ?? build('build-sveltekit.sh');
  const kitVersion = versionBeside(svelteDir, '@sveltejs/kit');
  const nextDir = args.nextjsDir ?? build('build-nextjs.sh');
  const nextVersion = versionBeside(nextDir, 'next');
  const servers = [];
  const pages = [];
  try {
    const svelte = await serveStatic(svelteDir);
    servers.push(svelte);
    pages.push({ key: 'sveltekit', label: `SvelteKit${kitVersion ? ` ${kitVersion}` : ''} (static)`, url: svelte.url, results: [] });
    const next = await serveStatic(nextDir);
    servers.push(next);
    pages.push({ key: 'nextjs', label: `Next.js${nextVersion ? ` ${nextVersion}` : ''} (static export)`, url: next.url, results: [] });

    let perseusUrl = args.positional[0];
    if (args.perseusDir) {
      if (perseusUrl) throw new Error('give a Perseus URL or --perseus-dir, not both');
      const perseus = await serveStatic(args.perseusDir);
      servers.push(perseus);
      perseusUrl = perseus.url;
    }
    if (perseusUrl) pages.push({ key: 'perseus', label: args.perseusLabel ?? 'Perseus', url: perseusUrl, results: [] });

    for (let i = 0; i < args.runs; i++) {
      for (const page of pages) {
        const result = await bench.measureOnce(page.url, options);
        page.results.push(result);
        console.error(bench.runLine(page.label, result, i));
      }
    }

    const browserVersion = `Chromium ${pages[0].results[0]?.browserVersion ?? '(version unknown)'}`;
    const summaries = Object.fromEntries(pages.map((p) => [p.key, { label: p.label, ...bench.summarize(p.url, p.results, options) }]));
    for (const s of Object.values(summaries)) for (const w of s.warnings) console.error(`warning (${s.label}): ${w}`);
    console.log(table(bench, summaries, { ...args, profile, browserVersion }));
    if (args.json) {
      writeFileSync(args.json, JSON.stringify({ browser: browserVersion, conditions: bench.conditionsOf(profile, args.cpuRate), pages: summaries }, null, 2));
      console.error(`run: wrote ${args.json}`);
    }
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}

function table(bench, summaries, { profile, cpuRate, runs, browserVersion }) {
  const { sveltekit, nextjs, perseus } = summaries;
  const fmtBytes = (b) => `${b.toLocaleString('en-US')} B (${bench.kb(b)})`;
  const row = (s) => [
    s.label,
    fmtBytes(s.bytes.median),
    s.bodyBytes.median.toLocaleString('en-US') + ' B',
    `${bench.seconds(s.usableMs.median)} [${bench.seconds(s.usableMs.min)}-${bench.seconds(s.usableMs.max)}]`,
    `${s.clickToResponseMs.median} ms [${s.clickToResponseMs.min}-${s.clickToResponseMs.max}]`,
  ];
  const ratio = (a, b) => (b ? `${(a / b).toFixed(2)}x` : 'n/a');
  const rows = [
    ['page', 'on the wire (gzip, headers incl.)', 'bodies only', 'vote usable: median [min-max]', 'click-to-response: median [min-max]'],
    row(sveltekit),
    row(nextjs),
  ];
  // Perseus against each baseline: below 1.00x is smaller or sooner.
  const ratioRow = (s, base, name) => [
    `ratio Perseus/${name}`,
    ratio(s.bytes.median, base.bytes.median),
    ratio(s.bodyBytes.median, base.bodyBytes.median),
    ratio(s.usableMs.median, base.usableMs.median),
    ratio(s.clickToResponseMs.median, base.clickToResponseMs.median),
  ];
  if (perseus) {
    rows.push(row(perseus));
    rows.push(ratioRow(perseus, sveltekit, 'SvelteKit'));
    rows.push(ratioRow(perseus, nextjs, 'Next.js'));
  }
  for (const r of REFERENCE) rows.push([r.page, r.bytes, '', r.usable, '']);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  const out = [
    `First visit (fresh profile, empty cache), ${browserVersion}, headless; ${runs} runs per page, interleaved.`,
    `Network: ${profile.description} [${profile.source}]. CPU throttling ${cpuRate}x.`,
    'Served over HTTP/1.1 from 127.0.0.1; gzip. "vote usable": first button[data-vote] enabled, ms from navigation start.',
    '',
    line(rows[0]),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
    '',
    perseus
      ? `${perseus.label}: ${perseus.url}. Ratios: its medians over the baseline's; below 1.00x is smaller or sooner.`
      : 'Perseus page: not given, so SvelteKit and Next.js alone were measured (pass its URL, or --perseus-dir DIR for a static export).',
    ...Object.values(summaries)
      .filter((s) => s.serviceWorkerBytes?.median)
      .map((s) => `${s.label}: its service worker fetched ${s.serviceWorkerBytes.median.toLocaleString('en-US')} B more (median), unthrottled and not in the table.`),
    ...Object.values(summaries)
      .filter((s) => s.results.some((r) => r.streams.length))
      .map((s) => `${s.label}: opened live streams (${[...new Set(s.results.flatMap((r) => r.streams.map((x) => x.kind)))].join(', ')}), not in the table; see --json.`),
    'The issue\'s reference figures fit 400 ms request latency (--profile rtt400-3g), not DevTools\' 2000 ms; see README.md.',
  ];
  return out.join('\n');
}

main().catch((err) => {
  console.error(`run: ${err.message}`);
  process.exit(1);
});
