#!/usr/bin/env node
// The `projectx` command. The sources are TypeScript run by Node's built-in type stripping (Node >= 22.18 and
// 24 do it by default; 22.12-22.17 need a flag, so we re-run ourselves with it). `npm start` / `npm run
// projectx` use the Node 24 pinned in devDependencies.
import { spawn } from 'node:child_process';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `projectx needs Node >= 22.12 (this is ${process.version}). Run it through npm (npm start, npm run projectx -- ...), ` +
      'which uses the Node 24 pinned in devDependencies.\n',
  );
  process.exit(1);
}

if (process.features.typescript) {
  const { main } = await import('../src/cli/main.ts');
  await main();
} else {
  const child = spawn(process.execPath, ['--experimental-strip-types', '--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
  // A terminal's Ctrl-C already reaches the child (same process group): forwarding it would be a second signal.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
