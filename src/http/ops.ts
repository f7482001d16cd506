/**
 * Operations surface: `GET /healthz` (the process is alive), `GET /readyz` (each dependency answers within its
 * timeout; 503 naming what is not reachable), `GET /metrics` (Prometheus text).
 */
import { Hono } from 'hono';
import type { Metrics } from '../metrics.ts';
import { errorBody } from './errors.ts';

export interface ReadinessCheck {
  name: string;
  /** Resolves when the dependency is reachable; rejects (or times out) when not. */
  check: (signal: AbortSignal) => Promise<unknown>;
}

export interface OpsOptions {
  metrics: Metrics;
  checks: readonly ReadinessCheck[];
  /** Per-check timeout; a hung database must not hang the probe. */
  checkTimeoutMs?: number;
}

export function createOpsApp(options: OpsOptions): Hono {
  const timeoutMs = options.checkTimeoutMs ?? 2000;
  const app = new Hono();

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const results = await Promise.all(options.checks.map(async ({ name, check }) => ({ name, problem: await runCheck(check, timeoutMs) })));
    const checks = Object.fromEntries(results.map(({ name, problem }) => [name, problem ?? 'ok']));
    const failing = results.filter((result) => result.problem !== undefined);
    if (failing.length === 0) return c.json({ status: 'ready', checks });
    const message = failing.map(({ name, problem }) => `${name} unreachable: ${problem}`).join('; ');
    return c.json({ ...errorBody('not_ready', message), checks }, 503);
  });

  app.get('/metrics', async (c) => {
    const body = await options.metrics.registry.metrics();
    return c.body(body, 200, { 'Content-Type': options.metrics.registry.contentType });
  });

  return app;
}

async function runCheck(check: ReadinessCheck['check'], timeoutMs: number): Promise<string | undefined> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve(`no answer within ${timeoutMs} ms`);
    }, timeoutMs);
  });
  try {
    return await Promise.race([
      check(controller.signal).then(() => undefined),
      timeout,
    ]);
  } catch (error) {
    return error instanceof Error ? error.message || error.name : 'check failed';
  } finally {
    clearTimeout(timer);
  }
}
