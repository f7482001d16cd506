/**
 * One vocabulary for signature failures: on every surface that verifies its callers (Slack, partner webhooks,
 * connector webhooks), each failure answers 401 with its shared code and message, and is counted under the same
 * code. Each surface lists a request for every code (the type makes a new code need a case everywhere).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { createSlackSurface } from '../../src/bot/slack/surface.ts';
import { loadConfig } from '../../src/config.ts';
import { serviceConnectors as connectors } from '../support/jobs.ts';
import { Keyring } from '../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../src/connectors/sdk/instances.ts';
import { createConnectorWebhooks } from '../../src/connectors/sdk/webhook.ts';
import { servicenow } from '../../src/connectors/servicenow/index.ts';
import { createWebhookReceiver } from '../../src/connectors/webhook-bridge/inbound.ts';
import { genericPartner, type Partner } from '../../src/connectors/webhook-bridge/partners.ts';
import { newWebhookSecret, secretKey, signHubSignature, signStandardWebhook } from '../../src/connectors/webhook-bridge/signatures.ts';
import { createApp } from '../../src/http/app.ts';
import { SIGNATURE_FAILURE_CODES, SIGNATURE_FAILURES, type SignatureFailure, signatureFailureBody } from '../../src/http/signature-failures.ts';
import { DEFAULT_MAPPING } from '../../src/connectors/webhook-bridge/mapping.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';
import { captureLogs } from '../support/logs.ts';
import { SIGNING_SECRET, signedRequest, slashCommandBody } from '../support/slack.ts';

const PARTNER_SECRET = newWebhookSecret();
const CONNECTOR_SECRET = newWebhookSecret();
const GITHUB_SECRET = 'github-partner-secret-0123456789';

const BODY = Buffer.from(JSON.stringify({ type: 'task.create', data: { title: 'Signed or not' } }));
const SLACK_BODY = slashCommandBody({ text: 'help' });
const seconds = (at: Date) => Math.floor(at.getTime() / 1000);
const minutesFrom = (now: Date, minutes: number) => new Date(now.getTime() + minutes * 60_000);

/** A Standard Webhooks request (partner and connector webhooks), signed at `at`, with a header left out if asked. */
function standard(path: string, secret: string, options: { at: Date; id?: string; drop?: string }): Request {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...signStandardWebhook([secret], options.id ?? `msg_${randomBytes(8).toString('hex')}`, seconds(options.at), BODY) };
  if (options.drop) delete headers[options.drop];
  return new Request(`http://localhost${path}`, { method: 'POST', body: BODY, headers });
}
const slack = (init: RequestInit) => new Request('http://localhost/slack/events', init);
const hub = (header: string | undefined) => new Request('http://localhost/api/integration/webhook/gh', { method: 'POST', body: BODY, headers: { 'content-type': 'application/json', ...(header === undefined ? {} : { 'x-hub-signature-256': header }) } });
const PARTNER_PATH = '/api/integration/webhook/generic';
const CONNECTOR_PATH = '/api/integrations/servicenow/webhook';

type SurfaceName = 'slack' | 'partner webhook' | 'partner webhook (GitHub scheme)' | 'connector webhook';

/** For each surface, a request (at the clock's `now`) failing with each code: a new code needs a case everywhere. */
const REQUESTS: Record<SurfaceName, Record<SignatureFailure, ((now: Date) => Request) | 'not_applicable'>> = {
  slack: {
    missing_signature: () => slack({ method: 'POST', body: SLACK_BODY, headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    malformed_signature: (now) => {
      const signed = signedRequest(SLACK_BODY, { now });
      return slack({ ...signed, headers: { ...(signed.headers as Record<string, string>), 'x-slack-signature': 'v1=abc' } });
    },
    invalid_signature: (now) => slack(signedRequest(SLACK_BODY, { now, secret: 'not-the-signing-secret' })),
    stale_timestamp: (now) => slack(signedRequest(SLACK_BODY, { now: minutesFrom(now, -10) })),
  },
  'partner webhook': {
    missing_signature: (now) => standard(PARTNER_PATH, PARTNER_SECRET, { at: now, drop: 'webhook-signature' }),
    malformed_signature: (now) => standard(PARTNER_PATH, PARTNER_SECRET, { at: now, id: 'msg.with.dots' }),
    invalid_signature: (now) => standard(PARTNER_PATH, newWebhookSecret(), { at: now }),
    stale_timestamp: (now) => standard(PARTNER_PATH, PARTNER_SECRET, { at: minutesFrom(now, -10) }),
  },
  // The GitHub scheme signs no timestamp, so a delivery cannot be stale (replays are caught by the body's hash).
  'partner webhook (GitHub scheme)': {
    missing_signature: () => hub(undefined),
    malformed_signature: () => hub(`sha1=${'0'.repeat(40)}`),
    invalid_signature: () => hub(signHubSignature('not-the-secret', BODY)),
    stale_timestamp: 'not_applicable',
  },
  'connector webhook': {
    missing_signature: (now) => standard(CONNECTOR_PATH, CONNECTOR_SECRET, { at: now, drop: 'webhook-timestamp' }),
    malformed_signature: (now) => standard(CONNECTOR_PATH, CONNECTOR_SECRET, { at: now, id: 'msg with spaces' }),
    invalid_signature: (now) => standard(CONNECTOR_PATH, newWebhookSecret(), { at: now }),
    stale_timestamp: (now) => standard(CONNECTOR_PATH, CONNECTOR_SECRET, { at: minutesFrom(now, 10) }),
  },
};

/** A surface's app, and the value its failure counter holds for a code (0 when never counted). */
interface Surface {
  app: Hono;
  counted(code: SignatureFailure): Promise<number>;
}

async function labelled(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.find((value) => Object.entries(labels).every(([label, expected]) => value.labels[label] === expected))?.value ?? 0;
}

describe('signature failures', () => {
  let fx: DomainFixture;
  const logs = captureLogs({ secrets: [SIGNING_SECRET, PARTNER_SECRET, CONNECTOR_SECRET, GITHUB_SECRET] });
  const surfaces = new Map<SurfaceName, Surface>();

  beforeAll(async () => {
    fx = await domainFixture();
    fx.clock.set(new Date());
    const config = loadConfig({ SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-test-token', SLACK_API_URL: 'http://127.0.0.1:9/api/', GENERIC_WEBHOOK_SECRET: PARTNER_SECRET });
    if (!config.ok) throw new Error(config.problems.join('; '));

    const slackMetrics = createMetrics({ defaultMetrics: false });
    const slackApp = createApp({ logger: logs.logger, metrics: slackMetrics, readiness: [], bodyLimitBytes: 1 << 20 });
    createSlackSurface({ config: config.config, domain: fx.deps, jobs: fx.jobs, logger: logs.logger, metrics: slackMetrics, integrations: () => Promise.resolve([]) })!.mount(slackApp);
    surfaces.set('slack', { app: slackApp, counted: (reason) => labelled(slackMetrics, 'slack_signature_failures_total', { reason }) });

    const partnerMetrics = createMetrics({ defaultMetrics: false });
    const github: Partner = { key: 'gh', scheme: 'github', mapping: DEFAULT_MAPPING, secrets: [{ key: secretKey(GITHUB_SECRET), expiresAt: null }] };
    const partners = { resolve: (key: string) => Promise.resolve(key === 'generic' ? genericPartner(config.config) : key === 'gh' ? github : undefined), close: () => Promise.resolve() };
    const receiver = createWebhookReceiver({ db: fx.tdb.db, jobs: fx.jobs, outbox: { poke: () => {} }, partners, clock: fx.clock, logger: logs.logger, metrics: partnerMetrics });
    surfaces.set('partner webhook', { app: receiver.app, counted: (reason) => labelled(partnerMetrics, 'webhook_failures_total', { partner: 'generic', reason }) });
    surfaces.set('partner webhook (GitHub scheme)', { app: receiver.app, counted: (reason) => labelled(partnerMetrics, 'webhook_failures_total', { partner: 'gh', reason }) });

    const connectorMetrics = createMetrics({ defaultMetrics: false });
    const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
    await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: 'default', settings: { baseUrl: 'http://127.0.0.1:9', clientId: 'id' }, credentials: { client_secret: 'client-secret-1', webhook_secret: CONNECTOR_SECRET } });
    const webhooks = createConnectorWebhooks({ db: fx.tdb.db, keyring, jobs: fx.jobs, clock: fx.clock, logger: logs.logger, metrics: connectorMetrics, connectors });
    surfaces.set('connector webhook', { app: webhooks, counted: (outcome) => labelled(connectorMetrics, 'connector_webhooks_total', { connector: 'servicenow', outcome }) });
  });
  afterAll(() => fx.close());

  it('has one message per code', () => {
    expect(SIGNATURE_FAILURE_CODES).toEqual(['missing_signature', 'malformed_signature', 'invalid_signature', 'stale_timestamp']);
    for (const code of SIGNATURE_FAILURE_CODES) expect(signatureFailureBody(code)).toEqual({ error: { code, message: SIGNATURE_FAILURES[code] } });
  });

  describe.each(Object.keys(REQUESTS) as SurfaceName[])('%s', (name) => {
    const codes = SIGNATURE_FAILURE_CODES.filter((code) => REQUESTS[name][code] !== 'not_applicable');
    it.each(codes)('answers %s with 401 and that code, and counts it under that code only', async (code) => {
      const surface = surfaces.get(name)!;
      const request = REQUESTS[name][code] as (now: Date) => Request;
      const counts = async () => Object.fromEntries(await Promise.all(SIGNATURE_FAILURE_CODES.map(async (each) => [each, await surface.counted(each)] as const)));
      const before = await counts();
      const res = await surface.app.request(request(fx.clock.now()));
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual(signatureFailureBody(code));
      expect(await counts()).toEqual({ ...before, [code]: before[code]! + 1 });
    });
  });

  it('never writes a signature to the log', () => {
    expect(logs.text()).not.toMatch(/v0=[0-9a-f]{64}|v1,[A-Za-z0-9+/]{43}=|sha256=[0-9a-f]{64}/);
  });
});
