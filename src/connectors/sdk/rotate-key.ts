/**
 * `projectx credentials rotate-key`: re-encrypts every secret at rest under the current key (the first of
 * `PROJECTX_ENCRYPTION_KEY`), so that an old key can then be dropped from the variable. Every encrypted value
 * is listed here with what its encryption is bound to (its AAD); one transaction does them all, so a value that
 * cannot be decrypted with the loaded keys stops the rotation with nothing changed, and the report says which.
 *
 * Rotation order for operators: put the new key first and keep the old one after it, restart, run this, then
 * remove the old key.
 */
import type { Kysely } from 'kysely';
import { installationAad } from '../../bot/slack/installations.ts';
import type { Database } from '../../db/schema.ts';
import { subscriptionSecretAad } from '../webhook-bridge/outbound/subscriptions.ts';
import { partnerSecretAad } from '../webhook-bridge/partners.ts';
import { type Envelope, type Keyring, isEnvelope } from './crypto.ts';
import { credentialAad } from './instances.ts';

export interface RotationReport {
  keyId: string;
  /** Re-encrypted, by kind of secret. */
  rotated: Record<string, number>;
  /** Already under the current key (left as they were unless `all`). */
  current: number;
  /** Could not be decrypted with the loaded keys: `kind:row` (no value). Non-empty: nothing was changed. */
  unreadable: string[];
}

export class RotationAborted extends Error {
  readonly report: RotationReport;
  constructor(report: RotationReport) {
    super(`${report.unreadable.length} stored secret(s) cannot be decrypted with the loaded keys (${report.unreadable.slice(0, 5).join(', ')}${report.unreadable.length > 5 ? ', …' : ''}); nothing was changed. Load the key they were written with (PROJECTX_ENCRYPTION_KEY) and run it again.`);
    this.report = report;
  }
}

export async function rotateKey(db: Kysely<Database>, keyring: Keyring, options: { actor: string; all?: boolean }): Promise<RotationReport> {
  const report: RotationReport = { keyId: keyring.currentKeyId, rotated: {}, current: 0, unreadable: [] };
  /** The value re-encrypted under the current key, or undefined when it stays as it is. */
  const again = (kind: string, row: string, value: unknown, aad: string): Envelope | undefined => {
    if (!isEnvelope(value)) return undefined;
    if (!keyring.isStale(value) && !options.all) {
      report.current++;
      return undefined;
    }
    try {
      const plaintext = keyring.decrypt(value, aad);
      report.rotated[kind] = (report.rotated[kind] ?? 0) + 1;
      return keyring.encrypt(plaintext, aad);
    } catch {
      report.unreadable.push(`${kind}:${row}`);
      return undefined;
    }
  };

  await db.transaction().execute(async (trx) => {
    for (const row of await trx.selectFrom('integration_configs').select(['id', 'credentials']).forUpdate().execute()) {
      const stored = (row.credentials ?? {});
      let changed = false;
      const next: Record<string, unknown> = { ...stored };
      for (const [field, value] of Object.entries(stored)) {
        const rotated = again('integration_credential', `${row.id}/${field}`, value, credentialAad(row.id, field));
        if (rotated) {
          next[field] = rotated;
          changed = true;
        }
      }
      if (changed) {
        await trx.updateTable('integration_configs').set({ credentials: JSON.stringify(next), updated_at: new Date() }).where('id', '=', row.id).execute();
        await trx.insertInto('integration_credentials_audit').values({ config_id: row.id, action: 'credentials.rotate_key', actor: options.actor, key_id: keyring.currentKeyId, detail: JSON.stringify({ fields: Object.keys(stored).sort() }) }).execute();
      }
    }
    for (const row of await trx.selectFrom('integration_tokens').select(['config_id', 'token']).forUpdate().execute()) {
      const rotated = again('integration_token', row.config_id, row.token, credentialAad(row.config_id, 'access_token'));
      if (rotated) await trx.updateTable('integration_tokens').set({ token: JSON.stringify(rotated) }).where('config_id', '=', row.config_id).execute();
    }
    for (const row of await trx.selectFrom('slack_installations').select(['id', 'enterprise_id', 'team_id', 'bot_token', 'refresh_token']).forUpdate().execute()) {
      const bot = again('slack_bot_token', row.id, row.bot_token, installationAad(row.enterprise_id, row.team_id, 'bot_token'));
      const refresh = again('slack_refresh_token', row.id, row.refresh_token, installationAad(row.enterprise_id, row.team_id, 'refresh_token'));
      if (bot || refresh) await trx.updateTable('slack_installations').set({ ...(bot ? { bot_token: JSON.stringify(bot) } : {}), ...(refresh ? { refresh_token: JSON.stringify(refresh) } : {}) }).where('id', '=', row.id).execute();
    }
    for (const row of await trx.selectFrom('webhook_partner_secrets').select(['id', 'partner_key', 'secret']).forUpdate().execute()) {
      const rotated = again('webhook_partner_secret', row.id, row.secret, partnerSecretAad(row.partner_key, row.id));
      if (rotated) await trx.updateTable('webhook_partner_secrets').set({ secret: JSON.stringify(rotated) }).where('id', '=', row.id).execute();
    }
    for (const row of await trx.selectFrom('webhook_subscriptions').select(['id', 'secret']).forUpdate().execute()) {
      const rotated = again('webhook_subscription_secret', row.id, row.secret, subscriptionSecretAad(row.id));
      if (rotated) await trx.updateTable('webhook_subscriptions').set({ secret: JSON.stringify(rotated) }).where('id', '=', row.id).execute();
    }
    if (report.unreadable.length > 0) throw new RotationAborted(report);
    await trx.insertInto('integration_credentials_audit').values({ config_id: null, action: 'keyring.rotate_key', actor: options.actor, key_id: keyring.currentKeyId, detail: JSON.stringify({ rotated: report.rotated, current: report.current }) }).execute();
  });
  return report;
}
