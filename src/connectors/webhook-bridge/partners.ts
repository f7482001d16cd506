/**
 * Partners: who may post webhooks to `/api/integration/webhook/:key`, with which signature scheme, which
 * secrets (encrypted at rest; several valid at once during a rotation) and which event mapping. Managed with
 * `projectx partners …`. The `generic` partner is not stored: it exists when `GENERIC_WEBHOOK_SECRET` is set,
 * uses Standard Webhooks and the default mapping.
 *
 * The receiver resolves a partner on every delivery, so partners are cached per process and the cache is
 * cleared by a NOTIFY from any change (migration 0700; rules in src/db/notified-cache.ts): a removed secret stops
 * verifying as soon as the notification arrives.
 */
import { type KeyObject, randomBytes, randomUUID } from 'node:crypto';
import type { Config } from '../../config.ts';
import type { Db } from '../../db/database.ts';
import { createNotifiedCache } from '../../db/notified-cache.ts';
import type { WebhookScheme } from '../../db/schema.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { type Keyring, isEnvelope } from '../sdk/crypto.ts';
import { DEFAULT_MAPPING, type Mapping, mappingSchema } from './mapping.ts';
import { newWebhookSecret, secretKey } from './signatures.ts';

export const GENERIC_PARTNER = 'generic';
export const PARTNER_KEY = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const SCHEMES: readonly WebhookScheme[] = ['standard', 'github', 'jira'];
export const PARTNERS_CHANNEL = 'projectx_webhook_partners';

export interface Partner {
  key: string;
  scheme: WebhookScheme;
  mapping: Mapping;
  /** Decrypted into HMAC keys (made once per load: see `WebhookSecret`), with when each stops being valid (null: until removed). */
  secrets: { key: KeyObject; expiresAt: Date | null }[];
}

export interface PartnerDirectory {
  resolve(key: string): Promise<Partner | undefined>;
  close(): Promise<void>;
}

/** What a stored partner secret's encryption is bound to (also used by `projectx credentials rotate-key`). */
export const partnerSecretAad = (key: string, secretId: string) => `webhook_partner:${key}:${secretId}`;
const aad = partnerSecretAad;

/** The `generic` partner from configuration, if configured. */
export function genericPartner(config: Pick<Config, 'GENERIC_WEBHOOK_SECRET'>): Partner | undefined {
  const secret = config.GENERIC_WEBHOOK_SECRET;
  return secret ? { key: GENERIC.key, scheme: GENERIC.scheme, mapping: GENERIC.mapping, secrets: [{ key: secretKey(secret), expiresAt: null }] } : undefined;
}

/** A partner is stored but its secrets cannot be read: no PROJECTX_ENCRYPTION_KEY (or the wrong one). */
export class PartnerSecretsUnreadable extends Error {
  readonly code = 'partner_secrets_unreadable';
}

/** How a partner's deliveries are read (no secrets): what processing and replays need. */
export type PartnerMapping = Pick<Partner, 'key' | 'scheme' | 'mapping'> & { emailSenders: string[] };

/** `generic`: Standard Webhooks and the default mapping; it takes no mail (it has nowhere to list senders). */
const GENERIC: PartnerMapping = { key: GENERIC_PARTNER, scheme: 'standard', mapping: DEFAULT_MAPPING, emailSenders: [] };

/** May this (lower-case) From address act for the partner by mail? An exact address or `@domain` in its list. */
export const mayMailAs = (partner: PartnerMapping, from: string) => partner.emailSenders.some((sender) => (sender.startsWith('@') ? from.endsWith(sender) : from === sender));

export async function loadPartnerMapping(db: Db, key: string): Promise<PartnerMapping | undefined> {
  // `generic` reads with the default mapping whether or not this process has its secret.
  if (key === GENERIC_PARTNER) return GENERIC;
  const row = await db.selectFrom('webhook_partners').select(['key', 'scheme', 'mapping', 'email_senders']).where('key', '=', key).executeTakeFirst();
  return row ? { key: row.key, scheme: row.scheme, mapping: mappingSchema.parse(row.mapping), emailSenders: row.email_senders } : undefined;
}

/** A stored partner with its secrets decrypted; throws `PartnerSecretsUnreadable` without a keyring. */
export async function loadPartner(db: Db, keyring: Keyring | undefined, key: string): Promise<Partner | undefined> {
  const partner = await loadPartnerMapping(db, key);
  if (!partner) return undefined;
  if (!keyring) throw new PartnerSecretsUnreadable(`partner ${key} exists but its secrets cannot be read: PROJECTX_ENCRYPTION_KEY is not set`);
  const secrets = await db.selectFrom('webhook_partner_secrets').select(['id', 'secret', 'expires_at']).where('partner_key', '=', key).orderBy('created_at', 'desc').execute();
  try {
    return {
      key: partner.key,
      scheme: partner.scheme,
      mapping: partner.mapping,
      secrets: secrets.flatMap((secret) => (isEnvelope(secret.secret) ? [{ key: secretKey(keyring.decrypt(secret.secret, aad(key, secret.id))), expiresAt: secret.expires_at }] : [])),
    };
  } catch (error) {
    throw new PartnerSecretsUnreadable(`partner ${key}'s secrets do not decrypt with PROJECTX_ENCRYPTION_KEY (${error instanceof Error ? error.message : 'error'})`);
  }
}

/** The secrets valid at `now`. */
export const validSecrets = (partner: Partner, now: Date): KeyObject[] => partner.secrets.filter((secret) => secret.expiresAt === null || secret.expiresAt > now).map((secret) => secret.key);

export async function createPartnerDirectory(options: { db: Db; keyring: Keyring | undefined; config: Config; connectionString: string; logger: Logger; metrics?: Metrics }): Promise<PartnerDirectory> {
  const generic = genericPartner(options.config);
  // A short TTL as well as the NOTIFY: should the listening connection hang unnoticed, a removed secret still
  // stops verifying within 10 s.
  const cache = await createNotifiedCache<Partner | null>({ connectionString: options.connectionString, channel: PARTNERS_CHANNEL, name: 'webhook_partner', logger: options.logger, metrics: options.metrics, ttlMs: 10_000 });
  return {
    async resolve(key) {
      if (key === GENERIC_PARTNER) return generic;
      if (!PARTNER_KEY.test(key)) return undefined;
      // Unknown keys are cached too (as null): probing random URLs must not cost a query each.
      return (await cache.get(key, async () => (await loadPartner(options.db, options.keyring, key)) ?? null)) ?? undefined;
    },
    close: () => cache.close(),
  };
}

/** A secret for a scheme: `whsec_…` for Standard Webhooks; a random hex string for GitHub and Jira (they take any string). */
const secretFor = (scheme: WebhookScheme) => (scheme === 'standard' ? newWebhookSecret() : randomBytes(32).toString('hex'));

/** Adds a partner with a new secret, returned once (only its ciphertext is stored). */
export async function addPartner(db: Db, keyring: Keyring, input: { key: string; scheme: WebhookScheme; mapping?: unknown; description?: string | undefined; emailSenders?: readonly string[] }): Promise<Result<{ key: string; secret: string }>> {
  if (!PARTNER_KEY.test(input.key)) return refuse('invalid_partner_key', `"${input.key}" is not a partner key: lowercase letters, digits, - and _, up to 63, starting with a letter or digit`);
  if (input.key === GENERIC_PARTNER) return refuse('reserved_partner_key', '"generic" is configured by GENERIC_WEBHOOK_SECRET, not stored');
  if (!SCHEMES.includes(input.scheme)) return refuse('invalid_scheme', `unknown scheme "${input.scheme}" (schemes: ${SCHEMES.join(', ')})`);
  const senders = (input.emailSenders ?? []).map((sender) => sender.trim().toLowerCase());
  const badSender = senders.find((sender) => !/^([^\s@]+)?@[^\s@]+\.[^\s@]+$/.test(sender));
  if (badSender !== undefined) return refuse('invalid_email_sender', `"${badSender}" is neither an email address nor @domain`);
  const mapping = mappingSchema.safeParse(input.mapping ?? DEFAULT_MAPPING);
  if (!mapping.success) return refuse('invalid_mapping', mapping.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '));
  const secret = secretFor(input.scheme);
  const created = await db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('webhook_partners')
      .values({ key: input.key, scheme: input.scheme, mapping: JSON.stringify(mapping.data), description: input.description ?? null, email_senders: senders })
      .onConflict((oc) => oc.column('key').doNothing())
      .returning('key')
      .executeTakeFirst();
    if (!row) return false;
    await insertSecret(trx, keyring, input.key, secret);
    return true;
  });
  if (!created) return refuse('partner_exists', `partner ${input.key} already exists (rotate its secret with: projectx partners rotate-secret ${input.key})`);
  return ok({ key: input.key, secret });
}

async function insertSecret(db: Db, keyring: Keyring, key: string, secret: string): Promise<void> {
  const id = randomUUID();
  // The AAD names the row, so a ciphertext copied to another partner or secret row does not decrypt.
  await db.insertInto('webhook_partner_secrets').values({ id, partner_key: key, secret: JSON.stringify(keyring.encrypt(secret, aad(key, id))) }).execute();
}

/**
 * A new secret for the partner; the ones it had stay valid for `overlapHours` (default 24) so the partner can
 * switch without losing deliveries (Standard Webhooks senders sign with both meanwhile).
 */
export async function rotatePartnerSecret(db: Db, keyring: Keyring, key: string, now: Date, overlapHours = 24): Promise<Result<{ secret: string; previousValidUntil: Date }>> {
  const partner = await db.selectFrom('webhook_partners').select(['key', 'scheme']).where('key', '=', key).executeTakeFirst();
  if (!partner) return refuse('unknown_partner', `no partner ${key}`);
  const until = new Date(now.getTime() + overlapHours * 3_600_000);
  const secret = secretFor(partner.scheme);
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('webhook_partner_secrets')
      .set({ expires_at: until })
      .where('partner_key', '=', key)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', until)]))
      .execute();
    await insertSecret(trx, keyring, key, secret);
  });
  return ok({ secret, previousValidUntil: until });
}

export async function removePartner(db: Db, key: string): Promise<boolean> {
  const result = await db.deleteFrom('webhook_partners').where('key', '=', key).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function listPartners(db: Db, now: Date): Promise<{ key: string; scheme: WebhookScheme; events: string[]; description: string | null; validSecrets: number }[]> {
  const rows = await db
    .selectFrom('webhook_partners')
    .leftJoin('webhook_partner_secrets', (join) => join.onRef('webhook_partner_secrets.partner_key', '=', 'webhook_partners.key').on((eb) => eb.or([eb('webhook_partner_secrets.expires_at', 'is', null), eb('webhook_partner_secrets.expires_at', '>', now)])))
    .select(['webhook_partners.key', 'webhook_partners.scheme', 'webhook_partners.mapping', 'webhook_partners.description', (eb) => eb.fn.count<string>('webhook_partner_secrets.id').as('valid')])
    .groupBy(['webhook_partners.key'])
    .orderBy('webhook_partners.key')
    .execute();
  return rows.map((row) => ({ key: row.key, scheme: row.scheme, events: Object.keys(row.mapping).sort(), description: row.description, validSecrets: Number(row.valid) }));
}
