/**
 * http-ops: what our HTTP middleware stack costs. GET /healthz (no access log) and GET /missing (a 404 through
 * the whole stack with its access log line) against our app, compared in the same run with a bare Hono app and
 * a bare node:http server on the same machine.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runLoad, table } from '../lib/load.ts';

const durationMs = Number(process.env.BENCH_DURATION_MS ?? 5000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
const serverFile = fileURLToPath(new URL('./server.ts', import.meta.url));

async function withServer<T>(kind: string, fn: (origin: string) => Promise<T>): Promise<T> {
  const child = fork(serverFile, [kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message: { port: number }) => resolve(message.port));
      child.once('exit', (code) => reject(new Error(`${kind} server exited (${code})`)));
    });
    const origin = `http://127.0.0.1:${port}`;
    await runLoad({ origin, connections, durationMs: 1000, request: () => ({ method: 'GET', path: '/healthz' }) }); // warm-up
    return await fn(origin);
  } finally {
    child.kill('SIGKILL');
  }
}

const rows = [];
for (const [label, kind, path] of [
  ['node:http (baseline)', 'node', '/healthz'],
  ['bare Hono (baseline)', 'hono', '/healthz'],
  ['projectx GET /healthz', 'projectx', '/healthz'],
  ['projectx GET /missing (404 + access log)', 'projectx', '/missing'],
] as const) {
  const result = await withServer(kind, (origin) => runLoad({ origin, connections, durationMs, request: () => ({ method: 'GET', path }) }));
  rows.push({ label, result });
}
console.log(`\n### http-ops (${connections} connections, ${durationMs / 1000} s each, loopback, server in its own process)\n`);
console.log(table(rows));
