/**
 * The servers under test, one per child process (the load generator and PostgreSQL do not share its event
 * loop):
 *
 * - `projectx`: the real service (`startService`, role `web`: the ack path; a worker would only add noise)
 *   against the bench database given in `BENCH_DATABASE_URL`. A slash command goes through our Hono receiver
 *   (signature, the `inbound_events` insert), Bolt, the identity lookup and the command layer, then is acked.
 * - `bolt`: a stock Bolt app, its built-in HTTPReceiver on node:http, and a listener that only acks. Bolt is
 *   given an `authorize` function so it never calls auth.test (with a bare `token` it would, at start-up, and
 *   with token verification off, on the first event); nothing here reaches the network.
 *
 * Tells the parent its port over IPC; on a `stop` message shuts down and exits (so `--cpu-prof` can write).
 */
import { App, HTTPReceiver, LogLevel } from '@slack/bolt';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serveBench, serveProjectx } from '../lib/server.ts';

const kind = process.argv[2];
const signingSecret = process.env.BENCH_SIGNING_SECRET ?? '';

if (kind === 'projectx') {
  await serveProjectx({
    DATABASE_URL: process.env.BENCH_DATABASE_URL,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_BOT_TOKEN: 'xoxb-bench',
    // As in production: with a key, each command's response_url is sealed (encrypted) at rest, on the ack path.
    PROJECTX_ENCRYPTION_KEY: `bench:${randomBytes(32).toString('base64')}`,
    // Nothing on the ack path calls Slack; if something did, it would fail fast here instead of leaving loopback.
    SLACK_API_URL: 'http://127.0.0.1:9/api/',
  });
} else if (kind === 'bolt') {
  const receiver = new HTTPReceiver({ signingSecret, endpoints: '/slack/events', logLevel: LogLevel.WARN });
  const app = new App({
    receiver,
    authorize: () => Promise.resolve({ botToken: 'xoxb-bench', botId: 'B1', botUserId: 'U1' }),
    logLevel: LogLevel.WARN,
    clientOptions: { slackApiUrl: 'http://127.0.0.1:9/api/' },
  });
  app.command('/projectx', async ({ ack }) => {
    await ack();
  });
  const server = await app.start({ port: 0, host: '127.0.0.1' });
  serveBench((server.address() as AddressInfo).port, () => app.stop());
} else {
  throw new Error(`unknown server kind ${kind}`);
}
