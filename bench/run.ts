/**
 * `npm run bench [-- name ...]`: runs each benchmark (a folder in bench/ with an index.ts) in its own process,
 * one after another, and prints their tables. Every benchmark measures its baseline in the same run, because
 * this machine is shared and noisy: compare rows within one table, not across runs.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = import.meta.dirname;
const available = readdirSync(root).filter((name) => name !== 'lib' && statSync(path.join(root, name)).isDirectory());
const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !available.includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${available.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length > 0 ? wanted : available) {
  console.log(`\n== ${name} ==`);
  const run = spawnSync(process.execPath, [path.join(root, name, 'index.ts')], { stdio: 'inherit' });
  if (run.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
