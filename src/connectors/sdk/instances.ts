/**
 * Connector instances (`integration_configs`): settings in clear, each credential field encrypted on its own
 * (AES-256-GCM through the Keyring, AAD `integration:<instance id>:<field>`, so a value moved to another row
 * or field does not decrypt), the enabled flag (the runbook's `integration.<name>.enabled`).
 *
 * An instance described by the environment (`SERVICENOW_*`) is created on start, enabled. Later starts bring
 * its settings and credentials in line with the environment (audited when credentials change) but never touch
 * `enabled`: an operator who disabled it keeps it disabled.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import type { ConnectorDefinition, ConnectorInstance } from './contract.ts';
import { type Envelope, type Keyring, isEnvelope } from './crypto.ts';

export const credentialAad = (instanceId: string, field: string) => `integration:${instanceId}:${field}`;

export class InstanceError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Stored shape of `integration_configs.credentials`: field → envelope. */
type StoredCredentials = Record<string, Envelope>;

/**
 * Creates or updates the instance the environment describes. Returns its id, or undefined when the
 * environment describes none.
 */
export async function ensureInstanceFromEnv(db: Kysely<Database>, keyring: Keyring | undefined, connector: ConnectorDefinition, described: ReturnType<ConnectorDefinition['fromEnv']>, environment = 'production'): Promise<string | undefined> {
  if (!described) return undefined;
  if (!keyring) throw new InstanceError('no_encryption_key', `${connector.title} credentials must be stored encrypted: set PROJECTX_ENCRYPTION_KEY`);
  const settings = connector.settings.parse(described.settings) as unknown;
  return db.transaction().execute(async (trx) => {
    const existing = await trx
      .selectFrom('integration_configs')
      .select(['id', 'credentials'])
      .where('type', '=', connector.id)
      .where('name', '=', described.name)
      .where('environment', '=', environment)
      .forUpdate()
      .executeTakeFirst();
    if (existing) {
      const changed = !sameCredentials(keyring, existing.id, existing.credentials as StoredCredentials, described.credentials);
      await trx
        .updateTable('integration_configs')
        .set({ settings: JSON.stringify(settings), ...(changed ? { credentials: JSON.stringify(encryptAll(keyring, existing.id, described.credentials)) } : {}), updated_at: new Date() })
        .where('id', '=', existing.id)
        .execute();
      if (changed) {
        await trx.insertInto('integration_credentials_audit').values({ config_id: existing.id, action: 'credentials.updated', actor: 'environment', key_id: keyring.currentKeyId, detail: JSON.stringify({ fields: Object.keys(described.credentials).sort() }) }).execute();
        // A token got with the old credentials must not outlive them.
        await trx.deleteFrom('integration_tokens').where('config_id', '=', existing.id).execute();
      }
      return existing.id;
    }
    const row = await trx
      .insertInto('integration_configs')
      .values({ type: connector.id, name: described.name, environment, enabled: true, settings: JSON.stringify(settings), credentials: '{}', created_at: new Date(), updated_at: new Date() })
      .returning('id')
      .executeTakeFirstOrThrow();
    await trx.updateTable('integration_configs').set({ credentials: JSON.stringify(encryptAll(keyring, row.id, described.credentials)) }).where('id', '=', row.id).execute();
    await trx.insertInto('integration_credentials_audit').values({ config_id: row.id, action: 'credentials.created', actor: 'environment', key_id: keyring.currentKeyId, detail: JSON.stringify({ fields: Object.keys(described.credentials).sort() }) }).execute();
    return row.id;
  });
}

/** The instance, settings validated, credentials decrypted on demand. */
export async function loadInstance<Settings>(db: Kysely<Database>, keyring: Keyring | undefined, connector: ConnectorDefinition<Settings>, id: string): Promise<ConnectorInstance<Settings>> {
  const row = await db.selectFrom('integration_configs').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || row.type !== connector.id) throw new InstanceError('instance_not_found', `no ${connector.title} instance ${id}`);
  const parsed = connector.settings.safeParse(row.settings);
  if (!parsed.success) throw new InstanceError('invalid_settings', `${connector.title} instance ${row.name} has invalid settings: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`);
  const stored = row.credentials as StoredCredentials;
  return {
    id: row.id,
    type: row.type,
    name: row.name,
    environment: row.environment,
    enabled: row.enabled,
    settings: parsed.data,
    credential(field) {
      const envelope = stored[field];
      if (!isEnvelope(envelope)) return undefined;
      if (!keyring) throw new InstanceError('no_encryption_key', `${connector.title} credentials cannot be read: set PROJECTX_ENCRYPTION_KEY`);
      return keyring.decrypt(envelope, credentialAad(row.id, field));
    },
  };
}

/** The instances of a connector, enabled ones only unless asked. */
export async function listInstances(db: Kysely<Database>, type: string, options: { includeDisabled?: boolean } = {}): Promise<{ id: string; name: string; environment: string; enabled: boolean }[]> {
  let query = db.selectFrom('integration_configs').select(['id', 'name', 'environment', 'enabled']).where('type', '=', type).orderBy('created_at');
  if (!options.includeDisabled) query = query.where('enabled', '=', true);
  return query.execute();
}

function encryptAll(keyring: Keyring, instanceId: string, credentials: Record<string, string>): StoredCredentials {
  const stored: StoredCredentials = {};
  for (const [field, value] of Object.entries(credentials)) stored[field] = keyring.encrypt(value, credentialAad(instanceId, field));
  return stored;
}

/** Whether the stored credentials are the given ones (decrypted and compared: nothing about them is stored in clear). */
function sameCredentials(keyring: Keyring, instanceId: string, stored: StoredCredentials, given: Record<string, string>): boolean {
  const fields = Object.keys(given).sort();
  if (fields.join('\0') !== Object.keys(stored).filter((field) => isEnvelope(stored[field])).sort().join('\0')) return false;
  try {
    return fields.every((field) => keyring.decrypt(stored[field]!, credentialAad(instanceId, field)) === given[field]);
  } catch {
    return false; // unreadable under the loaded keys: replace it
  }
}

/**
 * Creates or changes an instance from the operator's CLI: settings replaced when given (validated), credential
 * fields set one by one (others kept), audited under `actor`. A new instance starts disabled unless `enable`.
 */
export async function configureInstance(db: Kysely<Database>, keyring: Keyring | undefined, connector: ConnectorDefinition, input: { name: string; environment?: string; settings?: unknown; credentials?: Record<string, string>; actor: string }): Promise<{ id: string; created: boolean }> {
  const credentials = input.credentials ?? {};
  for (const field of Object.keys(credentials)) if (!connector.credentialFields.includes(field)) throw new InstanceError('unknown_credential', `${connector.title} has no credential "${field}" (it has ${connector.credentialFields.join(', ')})`);
  if (Object.keys(credentials).length > 0 && !keyring) throw new InstanceError('no_encryption_key', `${connector.title} credentials must be stored encrypted: set PROJECTX_ENCRYPTION_KEY`);
  let settings: unknown;
  if (input.settings !== undefined) {
    const parsed = connector.settings.safeParse(input.settings);
    if (!parsed.success) throw new InstanceError('invalid_settings', `invalid ${connector.title} settings: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(settings)'}: ${issue.message}`).join('; ')}`);
    settings = parsed.data;
  }
  const environment = input.environment ?? 'production';
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('integration_configs').select(['id', 'credentials']).where('type', '=', connector.id).where('name', '=', input.name).where('environment', '=', environment).forUpdate().executeTakeFirst();
    if (!existing && settings === undefined) throw new InstanceError('invalid_settings', `a new ${connector.title} instance needs its settings (--settings-file)`);
    const id = existing?.id ?? (await trx.insertInto('integration_configs').values({ type: connector.id, name: input.name, environment, enabled: false, settings: JSON.stringify(settings), credentials: '{}', created_at: new Date(), updated_at: new Date() }).returning('id').executeTakeFirstOrThrow()).id;
    const stored = { ...((existing?.credentials ?? {}) as StoredCredentials) };
    for (const [field, value] of Object.entries(credentials)) stored[field] = keyring!.encrypt(value, credentialAad(id, field));
    await trx
      .updateTable('integration_configs')
      .set({ ...(settings !== undefined ? { settings: JSON.stringify(settings) } : {}), credentials: JSON.stringify(stored), updated_at: new Date() })
      .where('id', '=', id)
      .execute();
    if (Object.keys(credentials).length > 0) await trx.deleteFrom('integration_tokens').where('config_id', '=', id).execute();
    if (Object.keys(credentials).length > 0 || !existing) {
      await trx.insertInto('integration_credentials_audit').values({ config_id: id, action: existing ? 'credentials.updated' : 'credentials.created', actor: input.actor, key_id: keyring?.currentKeyId ?? null, detail: JSON.stringify({ fields: Object.keys(credentials).sort(), settings: settings !== undefined }) }).execute();
    }
    return { id, created: !existing };
  });
}
