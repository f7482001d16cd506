/**
 * `projectx partners …` (who may post webhooks; secrets shown once, stored encrypted) and `projectx webhooks
 * quarantine|dead …` (deliveries waiting for an operator: payloads that did not fit, and deliveries whose
 * processing failed for good), each fixable and replayable. Replays are audited under the operator.
 */
import { readFile } from 'node:fs/promises';
import type { Io } from '../../bot/console/operator-cli.ts';
import { UsageError, audit, must, one, parse, strings } from '../../bot/console/operator-cli.ts';
import { CLI_ACTOR } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import type { Db } from '../../db/database.ts';
import { type ReviewArea, awaitingReview, isAwaitingReview } from '../../db/inbound-review.ts';
import type { WebhookScheme } from '../../db/schema.ts';
import type { OperatorContext } from '../../main.ts';
import { interpret } from './mapping.ts';
import { GENERIC_PARTNER, SCHEMES, addPartner, genericPartner, listPartners, loadPartnerMapping, removePartner, rotatePartnerSecret } from './partners.ts';
import { SOURCE_PREFIX, quarantineError, webhookProcess } from './process.ts';

const fail = (message: string) => Object.assign(new Error(message), { exitCode: 1 });

function requireKeyring(ctx: OperatorContext) {
  if (!ctx.keyring) throw fail('partner secrets are stored encrypted: set PROJECTX_ENCRYPTION_KEY (see .env.example) and try again');
  return ctx.keyring;
}

export async function partnersVerb(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const now = ctx.domain.clock.now();
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, { scheme: { type: 'string' }, 'mapping-file': { type: 'string' }, description: { type: 'string' }, 'email-sender': { type: 'string', multiple: true } });
      const key = positionals[0];
      if (!key) throw new UsageError('partners add <key> [--scheme standard|github|jira] [--mapping-file <json>] [--description "<text>"] [--email-sender <address or @domain>]...');
      const scheme = (one(values.scheme) ?? 'standard') as WebhookScheme;
      if (!SCHEMES.includes(scheme)) throw new UsageError(`--scheme must be one of ${SCHEMES.join(', ')}`);
      const mappingFile = one(values['mapping-file']);
      const mapping = mappingFile ? await readJson(mappingFile) : undefined;
      const added = must(await addPartner(ctx.db, requireKeyring(ctx), { key, scheme, mapping, description: one(values.description), emailSenders: strings(values['email-sender']) }));
      await audit(ctx, 'webhook_partner.add', 'webhook_partner', key, { scheme });
      io.out(`partner ${added.key} added (${scheme}); it posts to /api/integration/webhook/${added.key}`);
      io.out(`secret (shown once, give it to the partner): ${added.secret}`);
      return 0;
    }
    case 'list': {
      const rows = await listPartners(ctx.db, now);
      const generic = genericPartner(ctx.config);
      if (generic) io.out(`${GENERIC_PARTNER}  standard  events: ${Object.keys(generic.mapping).sort().join(', ')}  (from GENERIC_WEBHOOK_SECRET)`);
      for (const row of rows) io.out(`${row.key}  ${row.scheme}  events: ${row.events.join(', ') || 'none'}  valid secrets: ${row.validSecrets}${row.description ? `  ${row.description}` : ''}`);
      if (rows.length === 0 && !generic) io.out('no partners (add one with: projectx partners add <key>)');
      return 0;
    }
    case 'rotate-secret': {
      const { values, positionals } = parse(rest, { 'overlap-hours': { type: 'string' } });
      const key = positionals[0];
      if (!key) throw new UsageError('partners rotate-secret <key> [--overlap-hours <n>]');
      if (key === GENERIC_PARTNER) throw fail('the generic partner\'s secret is GENERIC_WEBHOOK_SECRET: change it in the environment');
      const overlap = Number(one(values['overlap-hours']) ?? 24);
      if (!Number.isFinite(overlap) || overlap < 0 || overlap > 24 * 30) throw new UsageError('--overlap-hours must be a number of hours from 0 to 720');
      const rotated = must(await rotatePartnerSecret(ctx.db, requireKeyring(ctx), key, now, overlap));
      await audit(ctx, 'webhook_partner.rotate_secret', 'webhook_partner', key, { overlapHours: overlap });
      io.out(`new secret for ${key} (shown once): ${rotated.secret}`);
      io.out(`the previous secret(s) stay valid until ${rotated.previousValidUntil.toISOString()}`);
      return 0;
    }
    case 'remove': {
      const key = rest[0];
      if (!key) throw new UsageError('partners remove <key>');
      if (!(await removePartner(ctx.db, key))) throw fail(`no partner ${key}`);
      await audit(ctx, 'webhook_partner.remove', 'webhook_partner', key, {});
      io.out(`partner ${key} removed; its URL now answers 404`);
      return 0;
    }
    default:
      throw new UsageError('partners add|list|rotate-secret|remove');
  }
}

export async function webhooksVerb(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [area, sub, ...rest] = args;
  if (area !== 'quarantine' && area !== 'dead') throw new UsageError('webhooks quarantine list|show|replay, webhooks dead list|replay');
  const now = ctx.domain.clock.now();
  switch (sub) {
    case 'list': {
      const { values } = parse(rest, { partner: { type: 'string' }, limit: { type: 'string' } });
      const partner = one(values.partner);
      const limit = Math.min(1000, Math.max(1, Number(one(values.limit) ?? 100) || 100));
      let query = ctx.db
        .selectFrom('inbound_events')
        .select(['id', 'source', 'delivery_id', 'kind', 'received_at', 'error'])
        .where((eb) => awaitingReview(eb, area, now))
        .where('source', 'like', `${SOURCE_PREFIX}%`)
        .orderBy('received_at', 'desc')
        .limit(limit);
      if (partner) query = query.where('source', '=', `${SOURCE_PREFIX}${partner}`);
      const rows = await query.execute();
      for (const row of rows) {
        const error = (row.error ?? {}) as { code?: string; message?: string };
        io.out(`${row.id}  ${row.source.slice(SOURCE_PREFIX.length)}  ${row.kind}  ${row.received_at.toISOString()}  ${error.code ?? ''}: ${error.message ?? ''}`);
      }
      if (rows.length === 0) io.out(area === 'quarantine' ? 'nothing in quarantine' : 'no failed deliveries');
      return 0;
    }
    case 'show': {
      const row = await find(ctx.db, rest[0], area, now);
      io.out(JSON.stringify({ id: row.id, partner: row.source.slice(SOURCE_PREFIX.length), deliveryId: row.delivery_id, eventType: row.kind, status: row.status, receivedAt: row.received_at, headers: row.headers, error: row.error, body: row.body.toString('utf8') }, null, 2));
      return 0;
    }
    case 'replay': {
      const { values, positionals } = parse(rest, { 'body-file': { type: 'string' } });
      const row = await find(ctx.db, positionals[0], area, now);
      const bodyFile = one(values['body-file']);
      if (bodyFile && area === 'dead') throw new UsageError('--body-file is for quarantined deliveries (a failed one already fitted its schema)');
      const body = bodyFile ? await readFile(bodyFile).catch(() => {
        throw fail(`cannot read ${bodyFile}`);
      }) : row.body;
      const key = row.source.slice(SOURCE_PREFIX.length);
      const partner = await loadPartnerMapping(ctx.db, key);
      if (!partner) throw fail(`partner ${key} no longer exists`);
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
      if (!replayed) throw fail(`delivery ${row.id} changed while it was being replayed; list it again`);
      io.out(`delivery ${row.id} (${key}, ${meaning.eventType} → ${meaning.action}) queued for processing again`);
      return 0;
    }
    default:
      throw new UsageError(`webhooks ${area} list|show|replay`);
  }
}

async function find(db: Db, id: string | undefined, area: ReviewArea, now: Date) {
  if (!id || !/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('give the delivery id (a UUID, from the list)');
  const row = await db.selectFrom('inbound_events').selectAll().where('id', '=', id).where('source', 'like', `${SOURCE_PREFIX}%`).executeTakeFirst();
  if (!row) throw fail(`no webhook delivery ${id}`);
  if (!isAwaitingReview(row, area, now)) throw fail(`delivery ${id} is ${row.status}, not ${area === 'quarantine' ? 'quarantined' : 'failed'}`);
  return row;
}

async function readJson(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8').catch(() => {
    throw fail(`cannot read ${file}`);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw fail(`${file} is not JSON`);
  }
}
