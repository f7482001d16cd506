/**
 * What every job handler receives as `deps`; built by the composition root (src/main.ts). A module's own jobs
 * get these plus what its `start` returned as `jobDeps` (Slack's client for Slack's jobs): see src/module.ts.
 */
import type { IntegrationHealth } from '../bot/commands/context.ts';
import type { Notifier, Rerenderer } from '../bot/notifier.ts';
import type { EvidencePipeline } from '../connectors/evidence-stores/pipeline.ts';
import type { ConnectorDefinition } from '../connectors/sdk/contract.ts';
import type { Keyring } from '../connectors/sdk/crypto.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { EventSink } from '../domain/events.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRuntime } from './runtime.ts';

export interface JobDeps {
  db: Db;
  logger: Logger;
  clock: Clock;
  /** The service's metrics registry (connectors count their calls and records on it). */
  metrics: Metrics;
  config: Config;
  jobs: Pick<JobRuntime, 'enqueue'>;
  /** Where domain events go (the outbox). */
  events: EventSink;
  /** One per configured chat surface (and email). */
  notifiers: readonly Notifier[];
  /** Surfaces that re-render the messages they posted about a task or incident when it changes. */
  rerenderers: readonly Rerenderer[];
  /** Where evidence files go. */
  evidence: EvidencePipeline;
  /** Credentials at rest (undefined with a real database and no PROJECTX_ENCRYPTION_KEY). */
  keyring?: Keyring | undefined;
  /** Every connector of the service's modules. */
  connectors: readonly ConnectorDefinition[];
  /** One health line per integration (App Home, status). */
  integrations: () => Promise<IntegrationHealth[]>;
}
