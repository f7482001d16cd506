/**
 * The servers under test, one per child process (the load generator, the fake channel and PostgreSQL do not
 * share its event loop), both configured with the same app id, tenant and fake channel (its OpenID metadata
 * and JWKS on 127.0.0.1), so both validate every token the same way:
 *
 * - `projectx`: the real service (`startService`, role `web`) against the bench database in
 *   `BENCH_DATABASE_URL`. An activity goes through our HTTP stack, botbuilder's CloudAdapter (the JWT), the
 *   tenant check and the `inbound_events` insert, the conversation store, the turn on the command layer (an
 *   invoke is decided and answered from the database) and the settle that stages the reply. No worker runs:
 *   replies stay staged as jobs, so neither Entra ID nor the Bot Connector is needed (both URLs point at a
 *   closed port on 127.0.0.1, so any call would fail at once instead of leaving loopback).
 * - `bare`: `createTeamsRoute` on a bare Hono app with a logic that only answers 200: the same CloudAdapter
 *   and JWT validation, nothing recorded.
 *
 * Tells the parent its port over IPC; on a `stop` message shuts down and exits (so `--cpu-prof` can write).
 */
import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { createTeamsAdapter, teamsAuthSettings } from '../../src/bot/teams/adapter.ts';
import { createTeamsRoute } from '../../src/bot/teams/route.ts';
import { loadConfig } from '../../src/config.ts';
import { startHttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { serveBench, serveProjectx } from '../lib/server.ts';

const kind = process.argv[2];
const teams = {
  MICROSOFT_APP_ID: process.env.BENCH_APP_ID,
  MICROSOFT_APP_PASSWORD: process.env.BENCH_APP_PASSWORD,
  MICROSOFT_APP_TENANT_ID: process.env.BENCH_TENANT,
  BOTFRAMEWORK_OPENID_METADATA_URL: process.env.BENCH_OPENID_METADATA_URL,
  // Role web never asks Entra ID for a token; if something did, it would fail here, on loopback.
  BOTFRAMEWORK_LOGIN_URL: 'http://127.0.0.1:9',
};

if (kind === 'projectx') {
  await serveProjectx({
    DATABASE_URL: process.env.BENCH_DATABASE_URL,
    ...teams,
    // As in production (and as slack-ack runs): a keyring is loaded.
    PROJECTX_ENCRYPTION_KEY: `bench:${randomBytes(32).toString('base64')}`,
  });
} else if (kind === 'bare') {
  const loaded = loadConfig({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', ...teams });
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  const settings = teamsAuthSettings(loaded.config);
  if (!settings) throw new Error('the bare adapter needs BENCH_APP_ID');
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const app = new Hono();
  app.route('/', createTeamsRoute({ adapter: createTeamsAdapter(settings), logger, metrics: createMetrics({ defaultMetrics: false }), logic: () => Promise.resolve({ status: 200 }) }));
  const server = await startHttpServer(app, { host: '127.0.0.1', port: 0 });
  serveBench(server.port, () => server.close(1000));
} else {
  throw new Error(`unknown server kind ${kind}`);
}
