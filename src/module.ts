/**
 * The module contract. Every surface (Slack, console, webhook bridge, email) and every connector (ServiceNow and
 * those to come) is a folder that declares, as data, what it reads from the configuration, the HTTP routes,
 * jobs, operator verbs, metrics and readiness checks it brings, and implements one `start` hook that builds its
 * parts for this process. `src/main.ts` walks the explicit list in `src/modules.ts` and names no module;
 * `test/modules.test.ts` checks that what each module declares is really wired into a running service and the
 * CLI.
 *
 * @example
 * export const emailModule = defineModule({
 *   id: 'email', title: 'Email (SMTP)', kind: 'surface',
 *   configuredBy: [['SMTP_HOST', 'SMTP_FROM_ADDRESS'], ['SMTP_INBOUND_PORT']],
 *   jobs: [emailProcess], verbs: [emailVerb], readiness: ['smtp_listener'],
 *   async start(ctx) { … return { notifiers: [notifier], stop: () => listener.close() }; },
 * });
 */
import type { Context, Hono } from 'hono';
import type { Kysely } from 'kysely';
import type { IntegrationHealth } from './bot/commands/context.ts';
import type { Notifier, Rerenderer } from './bot/notifier.ts';
import type { CliVerb } from './cli/verb.ts';
import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { EvidenceStore } from './connectors/evidence-stores/store.ts';
import { type EvidencePipeline, pipelineFromConfig } from './connectors/evidence-stores/pipeline.ts';
import type { ConnectorDefinition } from './connectors/sdk/contract.ts';
import type { Envelope, Keyring } from './connectors/sdk/crypto.ts';
import type { Db } from './db/database.ts';
import type { Database } from './db/schema.ts';
import type { DomainDeps } from './domain/deps.ts';
import type { IdentityDirectory } from './domain/identity-cache.ts';
import type { ReadinessCheck } from './http/ops.ts';
import type { InboundJob, InboundOutbox } from './jobs/inbound-outbox.ts';
import type { AnyJob, JobRuntime } from './jobs/runtime.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';

export type Role = 'all' | 'web' | 'worker';
export const ROLES: readonly Role[] = ['all', 'web', 'worker'];

/**
 * `platform`: not an integration (the governance core, the console, the connector framework): never in
 * `/projectx status`. The others are listed there with whether they are configured.
 */
export type ModuleKind = 'platform' | 'surface' | 'connector' | 'store';

export interface RouteSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** As Hono writes it (`/api/integration/webhook/:key`). */
  path: string;
}

/** One kind of secret a module keeps encrypted at rest, for `projectx credentials rotate-key`. */
export interface SecretStore {
  /** Plural noun for reports (`Slack installations`). */
  title: string;
  /**
   * Re-encrypts every stored value of this kind through `trx` (rows locked FOR UPDATE): `again` returns the
   * value re-encrypted under the current key, or undefined when it stays as it is (already current, or
   * unreadable: the rotation then aborts with nothing changed). `actor` is who rotates, for audit rows.
   */
  rotate(trx: Kysely<Database>, input: { again: (kind: string, row: string, value: unknown, aad: string) => Envelope | undefined; actor: string }): Promise<void>;
}

/** An evidence store back-end a module provides, chosen by configuration (`local` by default). */
export interface EvidenceStoreKind {
  kind: string;
  create(config: Config): EvidenceStore;
}

export interface ServiceModule {
  /** Stable, kebab-case; the module's name in logs, status and tests. */
  id: string;
  title: string;
  kind: ModuleKind;
  /**
   * The sets of variables, any one of which, fully set, configures it; empty: nothing to configure (always on).
   * When none is complete, start-up and `/projectx status` name the variables of the closest set.
   */
  configuredBy: readonly (readonly (keyof Config)[])[];
  /** HTTP routes it serves (web role) once configured: checked against the running app by the module test. */
  routes?: readonly RouteSpec[];
  /** Its jobs: queues everywhere (anyone may enqueue), workers and schedules in the worker role. */
  jobs?: readonly AnyJob[];
  /** Those of its jobs that inbound deliveries stage in the outbox (src/jobs/inbound-outbox.ts), relayed by every process. */
  stagedJobs?: readonly InboundJob[];
  /** Its operator verbs (`projectx <verb> …`). */
  verbs?: readonly CliVerb[];
  /** Names of the Prometheus metrics it registers on the service's registry. */
  metrics?: readonly string[];
  /** Names of the readiness checks it adds to `/readyz` once configured. */
  readiness?: readonly string[];
  /** A connector: synced, pushed to and reconciled by the connector framework. */
  connector?: ConnectorDefinition;
  /** Evidence store back-ends. */
  evidenceStores?: readonly EvidenceStoreKind[];
  /** Secrets it keeps encrypted at rest. */
  secrets?: readonly SecretStore[];
  /** Builds its parts for this process (both roles; `ctx.web` and `ctx.worker` say which run here). */
  start?(ctx: ModuleContext): Promise<ModuleParts | void> | ModuleParts | void;
}

/** What `start` gets: the shared dependencies, built once by src/main.ts. */
export interface ModuleContext {
  role: Role;
  /** This process serves HTTP (web or all). */
  web: boolean;
  /** This process runs jobs (worker or all). */
  worker: boolean;
  config: Config;
  db: Db;
  /** For modules that hold a LISTEN connection of their own. */
  connectionString: string;
  jobs: JobRuntime;
  domain: DomainDeps;
  keyring: Keyring | undefined;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Processing jobs staged with inbound deliveries, relayed into the queue. */
  outbox: InboundOutbox;
  /** Who is behind a chat identity (web role; chat surfaces share it). */
  identities: IdentityDirectory | undefined;
  /** Every connector of the listed modules. */
  connectors: readonly ConnectorDefinition[];
  /** One health line per integration (`/projectx status`, App Home). */
  integrations: () => Promise<IntegrationHealth[]>;
}

/** What a started module contributes to this process. */
export interface ModuleParts {
  /** Mounted at `/` of the web role's app. */
  routes?: Hono;
  notifiers?: readonly Notifier[];
  rerenderers?: readonly Rerenderer[];
  /** Merged over the shared job dependencies for this module's own jobs (a Slack client for Slack's jobs). */
  jobDeps?: Record<string, unknown>;
  readiness?: readonly ReadinessCheck[];
  /** Servers it listens on besides the HTTP app (the SMTP listener), for logs and tests. */
  listeners?: readonly { name: string; host: string; port: number }[];
  /** Told of every 413 the body limit answers (a module counts its own rejections). */
  onBodyTooLarge?: (c: Context) => void | Promise<void>;
  /** At shutdown, once the HTTP server accepts no more: finish what requests left (batches being written). */
  drain?: () => Promise<void>;
  /** At shutdown, after the job runtime has stopped (modules stop newest first). */
  stop?: () => Promise<void>;
}

/** Identity function that checks the shape; see the module comment. */
export function defineModule(module: ServiceModule): ServiceModule {
  return module;
}

/** Every connector of the modules, in list order. */
export function connectorsOf(modules: readonly ServiceModule[]): ConnectorDefinition[] {
  return modules.flatMap((module) => (module.connector ? [module.connector] : []));
}

/** Every job of the modules (each job belongs to one module: the module test checks it). */
export function jobsOf(modules: readonly ServiceModule[]): AnyJob[] {
  return modules.flatMap((module) => module.jobs ?? []);
}

/** Every operator verb of the modules. */
export function verbsOf(modules: readonly ServiceModule[]): CliVerb[] {
  return modules.flatMap((module) => module.verbs ?? []);
}

/**
 * The evidence pipeline this configuration describes: the store it selects (`EVIDENCE_STORE`), the virus
 * scanner (`CLAMAV_URL`), the size limit and the staging directory.
 */
export function evidencePipelineOf(modules: readonly ServiceModule[], config: Config): EvidencePipeline {
  const kinds = modules.flatMap((module) => module.evidenceStores ?? []);
  const chosen = kinds.find((kind) => kind.kind === config.EVIDENCE_STORE);
  if (!chosen) throw new Error(`no evidence store "${config.EVIDENCE_STORE}" among the modules (${kinds.map((kind) => kind.kind).join(', ') || 'none'})`);
  return pipelineFromConfig(chosen.create(config), config);
}
