/**
 * The Hono application: shared middleware, then one sub-app per surface mounted with `app.route`. Built from
 * its dependencies and testable with `app.request()`, no server needed.
 */
import { type Context, Hono } from 'hono';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { handleError, handleNotFound } from './errors.ts';
import { bodyLimit } from './middleware/body-limit.ts';
import { requestContext } from './middleware/request-context.ts';
import { type ReadinessCheck, createOpsApp } from './ops.ts';

export interface AppDeps {
  logger: Logger;
  metrics: Metrics;
  readiness: readonly ReadinessCheck[];
  bodyLimitBytes: number;
  /** Told of every 413 the body limit answers (a surface counts its own rejections). */
  onBodyTooLarge?: ((c: Context) => void | Promise<void>) | undefined;
}

/**
 * @example
 * const app = createApp({ logger, metrics, readiness: [], bodyLimitBytes: 1 << 20 });
 * const res = await app.request('/healthz'); // 200 {"status":"ok"}
 */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.use('*', requestContext({ logger: deps.logger, metrics: deps.metrics }));
  app.use('*', bodyLimit({ maxBytes: deps.bodyLimitBytes, onTooLarge: deps.onBodyTooLarge }));
  app.route('/', createOpsApp({ metrics: deps.metrics, checks: deps.readiness }));
  app.notFound(handleNotFound);
  app.onError(handleError(deps.logger));
  return app;
}
