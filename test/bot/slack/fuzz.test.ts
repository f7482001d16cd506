/**
 * Correctly signed but malformed Slack requests (seeded, so a failure replays): slash commands missing fields,
 * interactions without user, team, view or state, the evidence form with `state.values: null` or `files` that
 * is not a list, shortcuts we do not offer, NUL bytes and broken UTF-8 in every field, and valid payloads
 * mutated at random paths; plus the signature classes. None may get a 5xx, every 4xx is our error envelope,
 * and every refusal is recorded with its reason. Then a burst with one poisoned request among valid ones: the
 * valid ones are all answered and recorded, and no outcome of an earlier delivery is lost.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HonoSlackReceiver } from '../../../src/bot/slack/receiver.ts';
import { linkIdentity } from '../../../src/domain/users.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { blockActionsBody, denySubmissionBody, evidenceSubmissionBody, jsonFixture, signedRequest, slackWebApp, slashCommandBody } from '../../support/slack.ts';

const SEED = 20261207;

type Json = Record<string, unknown>;
const form = (payload: unknown) => new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
const payloadOf = (body: string) => JSON.parse(new URLSearchParams(body).get('payload')!) as Json;

describe('Slack request fuzzing', () => {
  let fx: DomainFixture;
  let web: Hono;
  let receiver: HonoSlackReceiver;
  const logs = captureLogs({ level: 'fatal' });

  beforeAll(async () => {
    fx = await domainFixture();
    fx.clock.set(new Date());
    const app = slackWebApp(fx, { logger: logs.logger });
    web = app.web;
    receiver = app.surface.receiver;
  });
  afterAll(() => fx.close());

  const post = (body: string, options?: Parameters<typeof signedRequest>[1]) => web.request('/slack/events', signedRequest(body, { now: fx.clock.now(), ...options }));

  // Valid payloads of every kind we serve, to be broken in every way.
  const validCommand = (n: number) => slashCommandBody({ text: 'help', trigger_id: `trg-fuzz-${n}`, user_id: 'UFUZZ', team_id: 'TFUZZ' });
  const validPayloads = (n: number): Json[] => [
    payloadOf(blockActionsBody({ actionId: 'approve', value: '00000000-0000-0000-0000-000000000000', userId: 'UFUZZ', teamId: 'TFUZZ', actionTs: `1700000000.${n}` })),
    payloadOf(evidenceSubmissionBody({ userId: 'UFUZZ', teamId: 'TFUZZ', fileIds: ['F0FUZZ'], controlId: 'AC-2', viewId: `VFUZZ${n}` })),
    payloadOf(denySubmissionBody({ userId: 'UFUZZ', teamId: 'TFUZZ', taskId: '00000000-0000-0000-0000-000000000000', reason: 'no', viewId: `VDENY${n}` })),
    { ...jsonFixture('slack_event_app_home_opened_sdk.json'), event_id: `EvFUZZ${n}` },
  ];

  /** A random value of any JSON type (what a mutation puts somewhere). */
  const anyValue = fc.oneof(fc.constant(null), fc.integer(), fc.boolean(), fc.string({ maxLength: 20 }), fc.constant([]), fc.constant({}), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), fc.constant('\u0000'), fc.constant('\ud800'));
  /** Every path in a JSON value. */
  const pathsOf = (value: unknown, prefix: string[] = []): string[][] =>
    value !== null && typeof value === 'object' ? [prefix, ...Object.entries(value).flatMap(([key, item]) => pathsOf(item, [...prefix, key]))] : [prefix];
  const mutate = (payload: Json, path: readonly string[], replacement: unknown, remove: boolean): Json => {
    const copy = structuredClone(payload);
    if (path.length === 0) return copy;
    let target: Record<string, unknown> = copy;
    for (const key of path.slice(0, -1)) {
      if (target[key] === null || typeof target[key] !== 'object') target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    const last = path.at(-1)!;
    if (remove) delete target[last];
    else target[last] = replacement;
    return copy;
  };

  const classes = {
    // A slash command with fields left out or replaced (no text, no user, no trigger, garbage command).
    command: fc
      .record({ n: fc.nat(), drop: fc.subarray(['text', 'user_id', 'team_id', 'trigger_id', 'command', 'response_url', 'channel_id']), junk: fc.dictionary(fc.constantFrom('text', 'command', 'user_id', 'team_id', 'trigger_id'), fc.oneof(fc.string({ maxLength: 30 }), fc.constant('\u0000'), fc.constant('%FF%FE'))) })
      .map(({ n, drop, junk }) => {
        const body = new URLSearchParams(validCommand(n));
        for (const key of drop) body.delete(key);
        for (const [key, value] of Object.entries(junk)) body.set(key, value);
        return { body: body.toString().replace(/%25FF%25FE/g, '%FF%FE'), contentType: 'application/x-www-form-urlencoded' };
      }),
    // Interactions without the parts listeners read.
    interaction: fc
      .record({ n: fc.nat(), which: fc.nat(3), drop: fc.subarray(['user', 'team', 'view', 'actions', 'type', 'trigger_id']), stateValues: fc.constantFrom(undefined, null, 'x', []) })
      .map(({ n, which, drop, stateValues }) => {
        const payload = validPayloads(n)[Math.min(which, 2)]!;
        for (const key of drop) delete payload[key];
        if (stateValues !== undefined && payload.view) (payload.view as Json).state = { values: stateValues };
        return { body: form(payload), contentType: 'application/x-www-form-urlencoded' };
      }),
    // The evidence form with files that are not a list of files, or no values at all.
    evidence: fc.record({ n: fc.nat(), files: fc.oneof(fc.constant(null), fc.constant('F1'), fc.constant({}), fc.array(fc.oneof(fc.constant(null), fc.string({ maxLength: 5 }), fc.record({ id: anyValue })), { maxLength: 3 }), fc.constant([{ id: 'F\u0000' }])) }).map(({ n, files }) => {
      const payload = validPayloads(n)[1]!;
      ((payload.view as Json).state as { values: Json }).values.files = { files_input: { type: 'file_input', files } };
      return { body: form(payload), contentType: 'application/x-www-form-urlencoded' };
    }),
    // Types we do not serve, bare or with random fields.
    unsupported: fc.record({ type: fc.oneof(fc.constantFrom('shortcut', 'message_action', 'interactive_message', 'dialog_submission', 'workflow_step_edit'), fc.string({ maxLength: 20 })), extra: fc.dictionary(fc.string({ maxLength: 8 }), anyValue, { maxKeys: 3 }) }).map(({ type, extra }) => ({ body: form({ ...extra, type }), contentType: 'application/x-www-form-urlencoded' })),
    // NUL and broken Unicode in every field that goes into a delivery id or kind.
    poisoned: fc.record({ n: fc.nat(), which: fc.nat(3), path: fc.constantFrom(['event_id'], ['trigger_id'], ['team', 'id'], ['user', 'id'], ['actions', '0', 'action_ts'], ['actions', '0', 'action_id'], ['view', 'id'], ['view', 'hash'], ['type'], ['team_id']), poison: fc.constantFrom('a\u0000b', '\u0000', '\ud800', 'x\udfff') }).map(({ n, which, path, poison }) => {
      const payload = mutate(validPayloads(n)[which]!, path, poison, false);
      return which === 3 ? { body: JSON.stringify(payload), contentType: 'application/json' } : { body: form(payload), contentType: 'application/x-www-form-urlencoded' };
    }),
    // Invalid UTF-8 bytes in a field (as percent-encoded bytes of the form, or raw in JSON).
    badUtf8: fc.record({ n: fc.nat(), bytes: fc.constantFrom('%FF', '%C0%AF', '%ED%A0%80', '%F8%88%80%80%80') }).map(({ n, bytes }) => ({ body: validCommand(n).replace(/text=help/, `text=he${bytes}lp`).replace(/trigger_id=trg-fuzz-/, `trigger_id=trg${bytes}-`), contentType: 'application/x-www-form-urlencoded' })),
    // Valid payloads mutated at a random path: removed, or replaced by any value.
    mutated: fc.record({ n: fc.nat(), which: fc.nat(3), pick: fc.nat(), replacement: anyValue, remove: fc.boolean() }).map(({ n, which, pick, replacement, remove }) => {
      const payload = validPayloads(n)[which]!;
      const paths = pathsOf(payload);
      const mutated = mutate(payload, paths[pick % paths.length]!, replacement, remove);
      return which === 3 ? { body: JSON.stringify(mutated), contentType: 'application/json' } : { body: form(mutated), contentType: 'application/x-www-form-urlencoded' };
    }),
    // Any JSON at all, signed.
    json: fc.record({ body: fc.json({ maxDepth: 4 }), contentType: fc.constantFrom('application/json', 'application/x-www-form-urlencoded') }),
  };

  it('answers 1,200 signed malformed requests without a 5xx, in the error envelope, and records each refusal with its reason', async () => {
    const statuses = new Map<number, number>();
    let refusals = 0;
    const request = fc.oneof(...Object.values(classes));
    await fc.assert(
      fc.asyncProperty(request, async ({ body, contentType }) => {
        const res = await post(body, { contentType });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        if (res.status >= 400) expect(JSON.parse(text)).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
        if (/malformed|unsupported_payload|unstorable_text|cannot be stored|not served here|offers no/.test(text)) refusals++;
      }),
      { numRuns: 1200, seed: SEED },
    );
    await receiver.flush();
    // Every class was met, and refusals were many: a generator that produced only valid requests proves nothing.
    expect(refusals).toBeGreaterThan(600);
    const rows = await fx.tdb.db.selectFrom('inbound_events').select(['status', 'error']).where('source', '=', 'slack').where('status', '=', 'quarantined').execute();
    expect(rows.length).toBeGreaterThan(300);
    for (const row of rows) expect((row.error as { code: string }).code).toMatch(/^(malformed_payload|unsupported_payload|unstorable_text|workspace_not_installed)$/);
    // The service still answers normally.
    const after = await post(validCommand(999_999));
    expect(after.status).toBe(200);
    expect(((await after.json()) as { text: string }).text).toMatch(/ProjectX/);
  });

  it('answers the signature classes with 401 and their codes, and a signed body that is no Slack payload with 400', async () => {
    const body = validCommand(1);
    const cases: [RequestInit, number, string][] = [
      [signedRequest(body, { secret: 'not-the-signing-secret-at-all', now: fx.clock.now() }), 401, 'invalid_signature'],
      [signedRequest(body, { now: new Date(fx.clock.now().getTime() - 3_600_000) }), 401, 'stale_timestamp'],
      [{ method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 401, 'missing_signature'],
      [{ method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': 'soon', 'x-slack-signature': 'v0=zz' } }, 401, 'malformed_signature'],
      [signedRequest('payload=%7B', { now: fx.clock.now() }), 400, 'malformed_body'],
      [signedRequest('[1,2]', { now: fx.clock.now(), contentType: 'application/json' }), 400, 'malformed_body'],
    ];
    for (const [init, status, code] of cases) {
      const res = await web.request('/slack/events', init);
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
  });

  it('answers and records every valid request of a burst with poisoned ones in it, and loses no earlier outcome', async () => {
    const user = await fx.user({ roles: ['viewer'] });
    await linkIdentity(fx.tdb.db, user.id, { surface: 'slack', tenant: 'TBURST', externalId: 'UBURST' }, 'test');
    const command = (trigger: string) => slashCommandBody({ text: 'help', trigger_id: trigger, user_id: 'UBURST', team_id: 'TBURST' });
    // Earlier deliveries, whose outcomes are still being written when the burst arrives.
    const earlier = Array.from({ length: 40 }, (_, i) => `trg-earlier-${i}`);
    const earlierAnswers = earlier.map((trigger) => post(command(trigger)));
    const valid = Array.from({ length: 60 }, (_, i) => `trg-burst-${i}`);
    // A form cannot carry a lone surrogate (it is encoded as U+FFFD); JSON can, as an escape.
    const poisonedBodies = ['trg-\u0000-1', '\u0000'].map(command);
    const poisonedEvents = ['Ev\u0000POISON', 'Ev\ud800POISON'].map((eventId) => JSON.stringify({ ...jsonFixture('slack_event_app_home_opened_sdk.json'), event_id: eventId }));
    const answers = await Promise.all([
      ...earlierAnswers,
      ...valid.map((trigger) => post(command(trigger))),
      ...poisonedBodies.map((body) => post(body)),
      ...poisonedEvents.map((body) => post(body, { contentType: 'application/json' })),
    ]);
    expect(answers.map((res) => res.status)).toEqual(answers.map(() => 200));
    await receiver.flush();
    const statuses = await fx.tdb.db
      .selectFrom('inbound_events')
      .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
      .where('delivery_id', 'in', [...earlier, ...valid].map((trigger) => `command:${trigger}`))
      .groupBy('status')
      .execute();
    expect(statuses).toEqual([{ status: 'processed', n: '100' }]);
    // The poisoned ones are recorded too, under their body's hash (their own ids cannot be stored), with why.
    const hashes = [...poisonedBodies, ...poisonedEvents].map((body) => `refused:${createHash('sha256').update(body).digest('hex')}`);
    const refused = await fx.tdb.db.selectFrom('inbound_events').select(['kind', 'status', 'error']).where('delivery_id', 'in', hashes).orderBy('kind').execute();
    expect(refused).toEqual([
      ...[1, 2].map(() => ({ kind: 'event_callback', status: 'quarantined', error: { code: 'unstorable_text', message: 'the request holds a NUL character or broken Unicode, which cannot be stored' } })),
      ...[1, 2].map(() => ({ kind: 'unknown', status: 'quarantined', error: { code: 'unstorable_text', message: 'the request holds a NUL character or broken Unicode, which cannot be stored' } })),
    ]);
  });
});
