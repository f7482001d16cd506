/**
 * `projectx partners …` (who may post webhooks; secrets shown once, stored encrypted) and `projectx webhooks
 * quarantine|dead …` (deliveries waiting for an operator: payloads that did not fit, and deliveries whose
 * processing failed for good), each fixable and replayable. Replays are audited under the operator.
 */
import { readFile } from 'node:fs/promises';
import { UsageError, fail, limitOption, must, one, oneArgument, parse, strings } from '../../cli/args.ts';
import { audit } from '../../cli/audit.ts';
import { type OperatorContext, requireKeyring } from '../../cli/context.ts';
import { printList } from '../../cli/output.ts';
import { type CliVerb, type Io, type VerbCommand, defineVerb } from '../../cli/verb.ts';
import { CLI_ACTOR } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import type { Db } from '../../db/database.ts';
import { type ReviewArea, awaitingReview, isAwaitingReview } from '../../db/inbound-review.ts';
import type { WebhookScheme } from '../../db/schema.ts';
import { interpret } from './mapping.ts';
import { GENERIC_PARTNER, SCHEMES, addPartner, genericPartner, listPartners, loadPartnerMapping, removePartner, rotatePartnerSecret } from './partners.ts';
import { SOURCE_PREFIX, quarantineError, webhookProcess } from './process.ts';

export const partnersVerb: CliVerb = defineVerb({
  name: 'partners',
  summary: 'Partners that post signed webhooks (secrets shown once, stored encrypted)',
  commands: [
    {
      name: 'add',
      usage: 'partners add <key> [--scheme standard|github|jira] [--mapping-file <json>] [--description "<text>"] [--email-sender <address or @domain>]...',
      summary: 'Prints the partner\'s secret once. --email-sender: who may act for it by mail (partner+<key>@…).',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { scheme: { type: 'string' }, 'mapping-file': { type: 'string' }, description: { type: 'string' }, 'email-sender': { type: 'string', multiple: true } });
        const key = oneArgument(positionals, 'partner key');
        const scheme = (one(values.scheme) ?? 'standard') as WebhookScheme;
        if (!SCHEMES.includes(scheme)) throw new UsageError(`--scheme must be one of ${SCHEMES.join(', ')}`);
        const mappingFile = one(values['mapping-file']);
        const mapping = mappingFile ? await readJson(mappingFile) : undefined;
        const added = must(await addPartner(ctx.db, requireKeyring(ctx, 'partner secrets'), { key, scheme, mapping, description: one(values.description), emailSenders: strings(values['email-sender']) }));
        await audit(ctx, 'webhook_partner.add', 'webhook_partner', key, { scheme });
        io.out(`partner ${added.key} added (${scheme}); it posts to /api/integration/webhook/${added.key}`);
        io.out(`secret (shown once, give it to the partner): ${added.secret}`);
        return 0;
      },
    },
    {
      name: 'list',
      usage: 'partners list',
      summary: 'Schemes, mapped events and how many secrets are valid (never the secrets).',
      list: true,
      async run(ctx, args, io) {
        parse(args, {});
        const generic = genericPartner(ctx.config);
        const rows = [
          ...(generic ? [{ key: GENERIC_PARTNER, scheme: 'standard' as WebhookScheme, events: Object.keys(generic.mapping).sort(), description: 'from GENERIC_WEBHOOK_SECRET', validSecrets: 1, fromEnvironment: true }] : []),
          ...(await listPartners(ctx.db, ctx.domain.clock.now())).map((row) => ({ ...row, fromEnvironment: false })),
        ];
        printList(io, rows, {
          line: (row) =>
            row.fromEnvironment
              ? `${row.key}  ${row.scheme}  events: ${row.events.join(', ')}  (from GENERIC_WEBHOOK_SECRET)`
              : `${row.key}  ${row.scheme}  events: ${row.events.join(', ') || 'none'}  valid secrets: ${row.validSecrets}${row.description ? `  ${row.description}` : ''}`,
          json: (row) => ({ key: row.key, scheme: row.scheme, events: row.events, validSecrets: row.validSecrets, description: row.description, fromEnvironment: row.fromEnvironment }),
          empty: 'no partners (add one with: projectx partners add <key>)',
        });
        return 0;
      },
    },
    {
      name: 'rotate-secret',
      usage: 'partners rotate-secret <key> [--overlap-hours <n>]',
      summary: 'A new secret, printed once; the old one stays valid for the overlap (default 24 h).',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { 'overlap-hours': { type: 'string' } });
        const key = oneArgument(positionals, 'partner key');
        if (key === GENERIC_PARTNER) fail('the generic partner\'s secret is GENERIC_WEBHOOK_SECRET: change it in the environment');
        const overlap = Number(one(values['overlap-hours']) ?? 24);
        if (!Number.isFinite(overlap) || overlap < 0 || overlap > 24 * 30) throw new UsageError('--overlap-hours must be a number of hours from 0 to 720');
        const rotated = must(await rotatePartnerSecret(ctx.db, requireKeyring(ctx, 'partner secrets'), key, ctx.domain.clock.now(), overlap));
        await audit(ctx, 'webhook_partner.rotate_secret', 'webhook_partner', key, { overlapHours: overlap });
        io.out(`new secret for ${key} (shown once): ${rotated.secret}`);
        io.out(`the previous secret(s) stay valid until ${rotated.previousValidUntil.toISOString()}`);
        return 0;
      },
    },
    {
      name: 'remove',
      usage: 'partners remove <key>',
      summary: 'Its URL answers 404 from then on.',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const key = oneArgument(positionals, 'partner key');
        if (!(await removePartner(ctx.db, key))) fail(`no partner ${key}`);
        await audit(ctx, 'webhook_partner.remove', 'webhook_partner', key, {});
        io.out(`partner ${key} removed; its URL now answers 404`);
        return 0;
      },
    },
  ],
});

/** `webhooks quarantine …` and `webhooks dead …`: the same three commands over deliveries waiting in either place. */
const reviewCommands = (area: ReviewArea): VerbCommand[] => [
  {
    name: `${area} list`,
    usage: `webhooks ${area} list [--partner <key>] [--limit <n>]`,
    summary: area === 'quarantine' ? 'Payloads that did not fit their partner\'s mapping, with the reason.' : 'Deliveries that failed for good, or are still unprocessed after 30 minutes.',
    list: true,
    async run(ctx, args, io) {
      const { values, positionals } = parse(args, { partner: { type: 'string' }, limit: { type: 'string' } });
      if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
      const partner = one(values.partner);
      let query = ctx.db
        .selectFrom('inbound_events')
        .select(['id', 'source', 'delivery_id', 'kind', 'status', 'received_at', 'error'])
        .where((eb) => awaitingReview(eb, area, ctx.domain.clock.now()))
        .where('source', 'like', `${SOURCE_PREFIX}%`)
        .orderBy('received_at', 'desc')
        .limit(limitOption(values.limit));
      if (partner) query = query.where('source', '=', `${SOURCE_PREFIX}${partner}`);
      printList(io, await query.execute(), {
        line: (row) => {
          const error = (row.error ?? {}) as { code?: string; message?: string };
          return `${row.id}  ${row.source.slice(SOURCE_PREFIX.length)}  ${row.kind}  ${row.received_at.toISOString()}  ${error.code ?? ''}: ${error.message ?? ''}`;
        },
        json: (row) => ({ id: row.id, partner: row.source.slice(SOURCE_PREFIX.length), deliveryId: row.delivery_id, eventType: row.kind, status: row.status, receivedAt: row.received_at, error: row.error }),
        empty: area === 'quarantine' ? 'nothing in quarantine' : 'no failed deliveries',
      });
      return 0;
    },
  },
  {
    name: `${area} show`,
    usage: `webhooks ${area} show <id>`,
    summary: 'Headers, error and the body as received (JSON).',
    async run(ctx, args, io) {
      const { positionals } = parse(args, {});
      const row = await find(ctx.db, positionals[0], area, ctx.domain.clock.now());
      io.out(JSON.stringify({ id: row.id, partner: row.source.slice(SOURCE_PREFIX.length), deliveryId: row.delivery_id, eventType: row.kind, status: row.status, receivedAt: row.received_at, headers: row.headers, error: row.error, body: row.body.toString('utf8') }, null, 2));
      return 0;
    },
  },
  {
    name: `${area} replay`,
    usage: area === 'quarantine' ? 'webhooks quarantine replay <id> [--body-file <fixed.json>]' : 'webhooks dead replay <id>',
    summary: area === 'quarantine' ? 'Checks it again (with a fixed body), then processes it.' : 'Processes it again, against the users, controls and partners as they are now.',
    run: (ctx, args, io) => replay(ctx, args, io, area),
  },
];

export const webhooksVerb: CliVerb = defineVerb({
  name: 'webhooks',
  summary: 'Partner webhook deliveries waiting for an operator: quarantined payloads and failed deliveries',
  commands: [...reviewCommands('quarantine'), ...reviewCommands('dead')],
});

async function replay(ctx: OperatorContext, args: readonly string[], io: Io, area: ReviewArea): Promise<number> {
  const { values, positionals } = parse(args, area === 'quarantine' ? { 'body-file': { type: 'string' } } : {});
  const row = await find(ctx.db, positionals[0], area, ctx.domain.clock.now());
  const bodyFile = one(values['body-file']);
  const body = bodyFile ? await readFile(bodyFile).catch(() => fail(`cannot read ${bodyFile}`)) : row.body;
  const key = row.source.slice(SOURCE_PREFIX.length);
  const partner = await loadPartnerMapping(ctx.db, key);
  if (!partner) fail(`partner ${key} no longer exists`);
  const meaning = interpret({ scheme: partner.scheme, mapping: partner.mapping, body, headers: row.headers });
  if (!meaning.ok) {
    io.err(`still does not fit: ${JSON.stringify(quarantineError(meaning))}`);
    return 1;
  }
  const replayed = await ctx.db.transaction().execute(async (trx) => {
    // Only from the state it was listed in: two operators replaying at once queue it once.
    const updated = await trx
      .updateTable('inbound_events')
      .set({ status: 'received', error: null, result: null, processed_at: null, kind: meaning.eventType, ...(bodyFile ? { body } : {}) })
      .where('id', '=', row.id)
      .where('status', '=', row.status)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) return false;
    await ctx.jobs.enqueue(webhookProcess, { inboundIds: [row.id] }, { db: trx });
    await appendAudit(trx, { actor: CLI_ACTOR, action: 'webhook_delivery.replay', objectType: 'inbound_event', objectId: row.id, outcome: 'success', at: ctx.domain.clock.now(), detail: { from: row.status, partner: key, bodyReplaced: Boolean(bodyFile) } });
    return true;
  });
  if (!replayed) fail(`delivery ${row.id} changed while it was being replayed; list it again`);
  io.out(`delivery ${row.id} (${key}, ${meaning.eventType} → ${meaning.action}) queued for processing again`);
  return 0;
}

async function find(db: Db, id: string | undefined, area: ReviewArea, now: Date) {
  if (!id || !/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('give the delivery id (a UUID, from the list)');
  const row = await db.selectFrom('inbound_events').selectAll().where('id', '=', id).where('source', 'like', `${SOURCE_PREFIX}%`).executeTakeFirst();
  if (!row) return fail(`no webhook delivery ${id}`);
  if (!isAwaitingReview(row, area, now)) fail(`delivery ${id} is ${row.status}, not ${area === 'quarantine' ? 'quarantined' : 'failed'}`);
  return row;
}

async function readJson(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8').catch(() => fail(`cannot read ${file}`));
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return fail(`${file} is not JSON`);
  }
}
