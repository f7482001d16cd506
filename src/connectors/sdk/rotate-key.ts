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
import type { Database } from '../../db/schema.ts';
import type { SecretStore } from '../../module.ts';
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

/**
 * Re-encrypts the secrets of every store (each module declares its own: src/module.ts `secrets`) in one
 * transaction. `onStore` is told before each store is done, for a progress line.
 */
export async function rotateKey(db: Kysely<Database>, keyring: Keyring, stores: readonly SecretStore[], options: { actor: string; all?: boolean; onStore?: (store: SecretStore, index: number, report: RotationReport) => void }): Promise<RotationReport> {
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
    for (const [index, store] of stores.entries()) {
      options.onStore?.(store, index, report);
      await store.rotate(trx, { again, actor: options.actor });
    }
    if (report.unreadable.length > 0) throw new RotationAborted(report);
    await trx.insertInto('integration_credentials_audit').values({ config_id: null, action: 'keyring.rotate_key', actor: options.actor, key_id: keyring.currentKeyId, detail: JSON.stringify({ rotated: report.rotated, current: report.current }) }).execute();
  });
  return report;
}

/** The connector framework's secrets: each instance's credential fields, and cached OAuth tokens. */
export const connectorSecretStores: readonly SecretStore[] = [
  {
    title: 'connector credentials',
    async rotate(trx, { again, actor }) {
      const rows = await trx.selectFrom('integration_configs').select(['id', 'credentials']).forUpdate().execute();
      for (const row of rows) {
        const stored = row.credentials ?? {};
        let changed: string | undefined;
        const next: Record<string, unknown> = { ...stored };
        for (const [field, value] of Object.entries(stored)) {
          const rotated = again('integration_credential', `${row.id}/${field}`, value, credentialAad(row.id, field));
          if (rotated) {
            next[field] = rotated;
            changed = rotated.kid;
          }
        }
        if (changed) {
          await trx.updateTable('integration_configs').set({ credentials: JSON.stringify(next), updated_at: new Date() }).where('id', '=', row.id).execute();
          await trx.insertInto('integration_credentials_audit').values({ config_id: row.id, action: 'credentials.rotate_key', actor, key_id: changed, detail: JSON.stringify({ fields: Object.keys(stored).sort() }) }).execute();
        }
      }
    },
  },
  {
    title: 'connector OAuth tokens',
    async rotate(trx, { again }) {
      const rows = await trx.selectFrom('integration_tokens').select(['config_id', 'token']).forUpdate().execute();
      for (const row of rows) {
        const rotated = again('integration_token', row.config_id, row.token, credentialAad(row.config_id, 'access_token'));
        if (rotated) await trx.updateTable('integration_tokens').set({ token: JSON.stringify(rotated) }).where('config_id', '=', row.config_id).execute();
      }
    },
  },
];
