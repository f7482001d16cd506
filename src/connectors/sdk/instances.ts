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
 * environment describes none. Its credentials are the environment's (replaced when they differ), and a new
 * instance starts enabled; `enabled` is never touched afterwards.
 */
export async function ensureInstanceFromEnv(db: Kysely<Database>, keyring: Keyring | undefined, connector: ConnectorDefinition, described: ReturnType<ConnectorDefinition['fromEnv']>, environment = 'production'): Promise<string | undefined> {
  if (!described) return undefined;
  if (!keyring) throw new InstanceError('no_encryption_key', `${connector.title} credentials must be stored encrypted: set PROJECTX_ENCRYPTION_KEY`);
  let given = described.settings as Record<string, unknown>;
  if (connector.envSettings) {
    // What an operator configured beyond the environment stays; what the environment owns follows it.
    const row = await db.selectFrom('integration_configs').select('settings').where('type', '=', connector.id).where('name', '=', described.name).where('environment', '=', environment).executeTakeFirst();
    const stored = row?.settings && typeof row.settings === 'object' && !Array.isArray(row.settings) ? (row.settings) : {};
    const owned = new Set(connector.envSettings);
    given = { ...Object.fromEntries(Object.entries(stored).filter(([key]) => !owned.has(key))), ...given };
  }
  const settings = connector.settings.parse(given) as unknown;
  const { id } = await writeInstance(db, keyring, connector, { name: described.name, environment, settings, credentials: { values: described.credentials, replace: true }, enabledWhenCreated: true, actor: 'environment' });
  return id;
}

/**
 * The one write path of instances: settings replaced when given; credentials replaced wholesale (`replace`,
 * and only when they differ from the stored ones) or set field by field; a change of credentials drops the
 * cached token and is audited, as is a new instance.
 */
async function writeInstance(
  db: Kysely<Database>,
  keyring: Keyring | undefined,
  connector: ConnectorDefinition,
  input: { name: string; environment: string; settings?: unknown; credentials?: { values: Record<string, string>; replace: boolean }; enabledWhenCreated: boolean; actor: string },
): Promise<{ id: string; created: boolean }> {
  return db.transaction().execute(async (trx) => {
    const now = new Date();
    // Several processes starting at once (a first deploy of web and worker) may all create it: one insert wins,
    // the others wait for it and then update the row it made.
    const inserted =
      input.settings === undefined
        ? undefined
        : await trx
            .insertInto('integration_configs')
            .values({ type: connector.id, name: input.name, environment: input.environment, enabled: input.enabledWhenCreated, settings: JSON.stringify(input.settings), credentials: '{}', created_at: now, updated_at: now })
            .onConflict((oc) => oc.columns(['type', 'name', 'environment']).doNothing())
            .returning('id')
            .executeTakeFirst();
    const existing = inserted ? undefined : await trx.selectFrom('integration_configs').select(['id', 'credentials']).where('type', '=', connector.id).where('name', '=', input.name).where('environment', '=', input.environment).forUpdate().executeTakeFirst();
    if (!inserted && !existing) throw new InstanceError('invalid_settings', `a new ${connector.title} instance needs its settings (--settings-file)`);
    const id = inserted?.id ?? existing!.id;
    const before = (existing?.credentials ?? {}) as StoredCredentials;
    const given = input.credentials;
    const changed = given !== undefined && (given.replace ? !(existing && sameCredentials(keyring!, id, before, given.values)) : Object.keys(given.values).length > 0);
    let stored = before;
    if (changed) {
      stored = given.replace ? {} : { ...before };
      for (const [field, value] of Object.entries(given.values)) stored[field] = keyring!.encrypt(value, credentialAad(id, field));
    }
    await trx
      .updateTable('integration_configs')
      .set({ ...(input.settings !== undefined ? { settings: JSON.stringify(input.settings) } : {}), ...(changed ? { credentials: JSON.stringify(stored) } : {}), updated_at: now })
      .where('id', '=', id)
      .execute();
    // A token got with the old credentials must not outlive them.
    if (changed && existing) await trx.deleteFrom('integration_tokens').where('config_id', '=', id).execute();
    if (changed || !existing) {
      await trx
        .insertInto('integration_credentials_audit')
        .values({ config_id: id, action: existing ? 'credentials.updated' : 'credentials.created', actor: input.actor, key_id: keyring?.currentKeyId ?? null, detail: JSON.stringify({ fields: Object.keys(given?.values ?? {}).sort(), settings: input.settings !== undefined }) })
        .execute();
    }
    return { id, created: !existing };
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
export async function listInstances(db: Kysely<Database>, type: string, options: { includeDisabled?: boolean } = {}): Promise<{ id: string; name: string; environment: string; enabled: boolean; schedules: unknown[]; settings: unknown }[]> {
  let query = db.selectFrom('integration_configs').select(['id', 'name', 'environment', 'enabled', 'schedules', 'settings']).where('type', '=', type).orderBy('created_at');
  if (!options.includeDisabled) query = query.where('enabled', '=', true);
  return query.execute();
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
 * fields set one by one (others kept), audited under `actor`. A new instance starts disabled.
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
  return writeInstance(db, keyring, connector, { name: input.name, environment: input.environment ?? 'production', ...(settings !== undefined ? { settings } : {}), ...(input.credentials ? { credentials: { values: credentials, replace: false } } : {}), enabledWhenCreated: false, actor: input.actor });
}
