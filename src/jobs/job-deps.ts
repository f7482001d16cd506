/** What every job handler receives as `deps`; built by the composition root (src/main.ts). */
import type { Notifier } from '../bot/notifier.ts';
import type { Rerenderer } from '../bot/slack/notifier.ts';
import type { SlackSender } from '../bot/slack/sender.ts';
import type { EvidenceStore } from '../connectors/evidence-stores/store.ts';
import type { Keyring } from '../connectors/sdk/crypto.ts';
import type { OutboundTransport } from '../connectors/webhook-bridge/outbound/destination.ts';
import type { SlackTokens } from '../bot/slack/tokens.ts';
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
  /** One per configured chat surface. */
  notifiers: readonly Notifier[];
  /** Surfaces that re-render the messages they posted about a task or incident when it changes. */
  rerenderers: readonly Rerenderer[];
  /** Where evidence files go. */
  evidenceStore: EvidenceStore;
  /** Credentials at rest (undefined with a real database and no PROJECTX_ENCRYPTION_KEY). */
  keyring?: Keyring | undefined;
  /** Outbound webhooks: the SSRF-guarded HTTP agent, shared by deliveries (absent: one per attempt). */
  outboundTransport?: OutboundTransport | undefined;
  /** Slack for Slack's jobs, when it can be reached (a bot token, or installations). */
  slack?: { sender: SlackSender; tokens: SlackTokens } | undefined;
}
