/**
 * The servers under test, one per child process (so the load generator does not share its event loop):
 * `node` a bare node:http handler (the physical baseline), `hono` a bare Hono app, `projectx` our createApp
 * with its full middleware stack (request context, metrics, body limit, access log to /dev/null).
 */
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:http';
import { Hono } from 'hono';
import { createApp } from '../../src/http/app.ts';
import { startHttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';

const kind = process.argv[2];
const send = (port: number) => process.send?.({ port });

if (kind === 'node') {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address && typeof address === 'object') send(address.port);
  });
} else if (kind === 'hono') {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  const server = await startHttpServer(app, { host: '127.0.0.1', port: 0 });
  send(server.port);
} else {
  const logger = createLogger({ level: 'info', destination: createWriteStream('/dev/null'), secrets: ['bench-secret-value'] });
  const app = createApp({ logger, metrics: createMetrics(), readiness: [], bodyLimitBytes: 1024 * 1024 });
  const server = await startHttpServer(app, { host: '127.0.0.1', port: 0 });
  send(server.port);
}
