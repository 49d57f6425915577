// The page-weight benchmark on the real poll page: starts a node with the
// browser tests' poll and a relay rendering its page (tests/browser/harness.mjs),
// then runs run.mjs on that page beside SvelteKit and Next.js. Arguments go to run.mjs.
// Run through page-weight.sh, which builds what this needs.

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cluster } from '../../tests/browser/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const c = await cluster();
let code = 1;
try {
  const run = spawn(process.execPath, [
    join(here, 'run.mjs'), c.pollUrl(),
    '--perseus-label', 'votemesh poll page (Perseus, served by the relay)',
    ...process.argv.slice(2),
  ], { stdio: 'inherit' });
  code = await new Promise((resolve) => run.once('exit', (status) => resolve(status ?? 1)));
} finally {
  await c.close();
}
process.exit(code);
