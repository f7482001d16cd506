/**
 * What every connector job does around its work: the instance (credentials decrypted on demand), skipped when
 * it is gone or disabled, the connector's runtime and its HTTP client, closed afterwards.
 */
import type { ConnectorDefinition, ConnectorInstance, ConnectorRuntime } from '../connectors/sdk/contract.ts';
import { InstanceError, loadInstance } from '../connectors/sdk/instances.ts';
import type { Logger } from '../logger.ts';
import type { JobDeps } from './job-deps.ts';

export class ConnectorJobError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export type Skipped = { skipped: 'instance_not_found' | 'disabled' };

export async function withConnectorInstance<Settings, Client, T>(
  deps: JobDeps,
  logger: Logger,
  connector: ConnectorDefinition<Settings, Client>,
  instanceId: string,
  work: (context: { instance: ConnectorInstance<Settings>; client: Client; runtime: ConnectorRuntime }) => Promise<T>,
): Promise<T | Skipped> {
  if (!deps.keyring) throw new ConnectorJobError('no_encryption_key', 'connector credentials cannot be read: set PROJECTX_ENCRYPTION_KEY');
  let instance: ConnectorInstance<Settings>;
  try {
    instance = await loadInstance(deps.db, deps.keyring, connector, instanceId);
  } catch (error) {
    if (error instanceof InstanceError && error.code === 'instance_not_found') return { skipped: 'instance_not_found' };
    throw error;
  }
  // A disabled instance does nothing; what it would have written waits for it.
  if (!instance.enabled) return { skipped: 'disabled' };
  const runtime: ConnectorRuntime = { db: deps.db, logger, clock: deps.clock, metrics: deps.metrics, events: deps.events, jobs: deps.jobs };
  const client = connector.createClient(instance, { ...runtime, keyring: deps.keyring });
  try {
    return await work({ instance, client, runtime });
  } finally {
    await client.close();
  }
}
