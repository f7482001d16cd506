/**
 * The Slack surface: a Bolt app behind our Hono receiver, wired to the command layer. Listeners answer inside
 * Slack's 3 seconds with database work only (the command layer); anything that calls Slack or another system
 * happens after the ack (opening a modal with the trigger id, `respond`) or in a job.
 */
import { App, LogLevel } from '@slack/bolt';
import { Hono } from 'hono';
import type { Config } from '../../config.ts';
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { searchControls } from '../../domain/controls.ts';
import type { IdentityDirectory } from '../../domain/identity-cache.ts';
import { findUserByIdentity } from '../../domain/users.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { CommandContext, IntegrationHealth } from '../commands/context.ts';
import { runAction, runCommand } from '../commands/dispatch.ts';
import { ephemeral } from './block-kit.ts';
import { DENY_REASON_VIEW, EVIDENCE_VIEW, denyReasonModal, evidenceModal } from './modals.ts';
import { can } from '../../domain/permissions.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import { stageEvidenceUpload } from './evidence-upload.ts';
import { slackPublishHome } from './home.ts';
import { slackLinkByEmail } from './link-by-email.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
import { createSlackAuthorize } from './allowlist.ts';
import { revokeInstallation } from './installations.ts';
import { createSlackOAuthApp } from './oauth.ts';
import { HonoSlackReceiver, type SlackDeliveryContext } from './receiver.ts';
import type { InboundOutbox } from '../../jobs/inbound-outbox.ts';
import { type SocketModeTransport, startSocketMode } from './socket-mode.ts';

export interface SlackSurfaceDeps {
  config: Config;
  domain: DomainDeps;
  /** Slow work (file downloads, App Home, email lookups, a new workspace's directory sync) goes to jobs. */
  jobs: Pick<JobRuntime, 'enqueue'>;
  /** For multi-workspace installs (tokens encrypted at rest); without it only SLACK_BOT_TOKEN serves. */
  keyring?: Keyring | undefined;
  logger: Logger;
  metrics: Metrics;
  integrations: () => Promise<IntegrationHealth[]>;
  /** Who is behind a Slack user, answered from a cache the database invalidates; without it, a query each time. */
  identities?: IdentityDirectory | undefined;
  /** Relays staged evidence uploads at once (without it, the outbox's own sweep does, within seconds). */
  outbox?: Pick<InboundOutbox, 'poke'> | undefined;
  /** How often deliveries left unprocessed by a stopped process are looked for (default 5 s). */
  redeliverySweepMs?: number;
}

export interface SlackSurface {
  app: App;
  receiver: HonoSlackReceiver;
  /** `POST /slack/events` (when a signing secret is set) and the install routes, as a sub-app. */
  routes: Hono;
  /** Mounts `routes` on the web app. */
  mount(web: Hono): void;
  /** Connects Socket Mode when `SLACK_APP_LEVEL_TOKEN` is set; nothing otherwise. */
  start(): Promise<void>;
  /** Socket Mode is connected (always true over HTTP): a readiness check. */
  readonly connected: boolean;
  stop(): Promise<void>;
}

/** The chat identity of whoever sent a Slack payload (Enterprise Grid: the enterprise id is the tenant). */
export function slackIdentity(body: Record<string, unknown>): { tenant: string; userId: string } | undefined {
  const str = (value: unknown) => (typeof value === 'string' && value ? value : undefined);
  const nested = (value: unknown, key: string) => (value && typeof value === 'object' ? str((value as Record<string, unknown>)[key]) : undefined);
  const userId = str(body.user_id) ?? nested(body.user, 'id');
  const tenant = str(body.enterprise_id) ?? nested(body.enterprise, 'id') ?? str(body.team_id) ?? nested(body.team, 'id') ?? nested(body.user, 'team_id');
  return userId && tenant ? { tenant, userId } : undefined;
}

/** Where Slack posts events, slash commands, interactivity and options (one Request URL). */
export const SLACK_EVENTS_PATH = '/slack/events';

export function createSlackSurface(deps: SlackSurfaceDeps): SlackSurface | undefined {
  const { config, domain, logger } = deps;
  if (!config.SLACK_SIGNING_SECRET && !config.SLACK_APP_LEVEL_TOKEN) return undefined;
  const receiver = new HonoSlackReceiver({
    signingSecret: config.SLACK_SIGNING_SECRET ?? '',
    db: domain.db,
    clock: domain.clock,
    logger,
    metrics: deps.metrics,
    keyring: deps.keyring,
    apiUrl: config.SLACK_API_URL,
    redeliverAfterMs: config.SLACK_REDELIVER_AFTER_SECONDS * 1000,
  });
  const app = new App({
    receiver,
    // Tokens come from our installation store (multi-workspace; org-wide installs by enterprise id) or the
    // configured single-workspace token: Bolt must never call auth.test on the request path.
    // An installation serves only a workspace that is allowed (allowlist.ts: listed, or installed through a link).
    authorize: createSlackAuthorize({ config, db: domain.db, keyring: deps.keyring, clock: domain.clock, logger }),
    ignoreSelf: false,
    // No conversation state is kept in Bolt (ours lives in the database); its default in-memory store would
    // grow with every channel and cost a lookup per event.
    convoStore: false,
    logLevel: LogLevel.WARN,
    logger: boltLogger(logger),
    // A lost response to a non-idempotent call must not make the SDK post twice; jobs retry instead.
    // A listener's calls are bounded (10 s), so a delivery still unprocessed after SLACK_REDELIVER_AFTER_SECONDS
    // belongs to a process that stopped, never to a slow one.
    clientOptions: { ...(config.SLACK_API_URL ? { slackApiUrl: config.SLACK_API_URL } : {}), retryConfig: { retries: 0 }, timeout: 10_000 },
  });
  // The receiver logs and records every failure; Bolt's default handler would log each a second time.
  app.error((error) => Promise.reject(error));

  const contextFor = async (body: Record<string, unknown>): Promise<CommandContext> => {
    const who = slackIdentity(body);
    const identity = who ? { surface: 'slack' as const, tenant: who.tenant, externalId: who.userId } : undefined;
    const user = identity ? await (deps.identities ? deps.identities.resolve(identity) : findUserByIdentity(domain.db, identity)) : undefined;
    if (identity && !user) {
      // First contact from an unlinked user: look up their verified Slack email in a job (never before the ack);
      // one job per user and hour at most.
      await deps.jobs.enqueue(slackLinkByEmail, { tenant: identity.tenant, slackUserId: identity.externalId }, { singletonKey: `${identity.tenant}:${identity.externalId}` }).catch((error: unknown) => logger.warn({ err: error }, 'could not queue the email lookup'));
    }
    const actor: Actor = identity ? { surface: 'slack', user, identity } : { surface: 'slack', user };
    return { domain, actor, integrations: deps.integrations };
  };

  app.command('/projectx', async ({ command, ack, client }) => {
    const reply = await runCommand(await contextFor(command), command.text);
    await ack(ephemeral(reply.message));
    if (reply.modal?.kind === 'evidence_upload') {
      // trigger_id lives ~3 s: open the form right after the ack.
      await client.views.open({ trigger_id: command.trigger_id, view: evidenceModal(reply.modal) });
    }
  });

  for (const actionId of ['approve', 'deny', 'ack'] as const) {
    app.action(actionId, async ({ ack, body, action, respond, client }) => {
      await ack();
      const value = 'value' in action && typeof action.value === 'string' ? action.value : '';
      const reply = await runAction(await contextFor(body as unknown as Record<string, unknown>), actionId, value);
      if (reply.modal?.kind === 'deny_reason' && 'trigger_id' in body) {
        await client.views.open({ trigger_id: body.trigger_id, view: denyReasonModal(reply.modal.taskId, reply.modal.taskRef) });
        return;
      }
      await respond({ ...ephemeral(reply.message), replace_original: false });
    });
  }

  app.view(DENY_REASON_VIEW, async ({ ack, view, body }) => {
    const taskId = view.private_metadata;
    const reason = view.state.values.reason?.reason_input?.value?.trim() ?? '';
    if (!reason) {
      await ack({ response_action: 'errors', errors: { reason: 'A denial needs a reason.' } });
      return;
    }
    const reply = await runCommand(await contextFor(body as unknown as Record<string, unknown>), `deny ${taskId} ${reason}`);
    if (reply.outcome === 'refused') {
      await ack({ response_action: 'errors', errors: { reason: reply.message.text.slice(0, 150) } });
      return;
    }
    await ack();
  });

  app.options('control_picker', async ({ ack, options, body }) => {
    // The picker lists controls only to people who may upload evidence.
    const ctx = await contextFor(body);
    if (!can(ctx.actor.user, 'evidence.upload')) {
      await ack({ options: [] });
      return;
    }
    const controls = await searchControls(domain.db, options.value ?? '', 20);
    await ack({ options: controls.map((control) => ({ text: { type: 'plain_text', text: `${control.id} ${control.title}`.slice(0, 75) }, value: control.id })) });
  });

  app.view(EVIDENCE_VIEW, async ({ ack, view, body, context }) => {
    const ctx = await contextFor(body as unknown as Record<string, unknown>);
    // The shape was checked at the edge (src/bot/slack/payloads.ts): files is a list of Slack files, or absent.
    const values = view.state.values as Record<string, Record<string, { files?: { id?: string }[] | null; selected_option?: { value?: string } | null }>>;
    const fileIds = (values.files?.files_input?.files ?? []).map((file) => file.id).filter((id): id is string => typeof id === 'string');
    const meta = parseTarget(view.private_metadata);
    const picked = values.control?.control_picker?.selected_option?.value;
    const controlId = picked ?? (meta?.kind === 'control' ? meta.id : undefined);
    const taskId = meta?.kind === 'task' ? meta.id : undefined;
    const errors: Record<string, string> = {};
    if (fileIds.length === 0) errors.files = 'Choose at least one file.';
    if (fileIds.length > 10) errors.files = 'At most 10 files at a time.';
    if (!controlId && !taskId) errors.control = 'Choose the control this evidence is for.';
    if (!ctx.actor.user) errors.files = 'Link your Slack account first: /projectx link';
    else if (!can(ctx.actor.user, 'evidence.upload')) errors.files = 'Uploading evidence needs the contributor role.';
    if (Object.keys(errors).length > 0) {
      await ack({ response_action: 'errors', errors });
      return;
    }
    const upload = { fileIds, userId: ctx.actor.user!.id, slackUserId: ctx.actor.identity!.externalId, tenant: ctx.actor.identity!.tenant, ...(controlId ? { controlId } : {}), ...(taskId ? { taskId } : {}) };
    const inboundId = (context.projectx as SlackDeliveryContext | undefined)?.inboundId;
    if (!inboundId) throw new Error('an evidence submission arrived without its recorded delivery');
    // Accepted means committed: the upload is staged with the delivery, in the transaction that marks it
    // processed (the inbound outbox relays it to a job), before the modal closes.
    await stageEvidenceUpload(domain.db, inboundId, upload, domain.clock.now());
    deps.outbox?.poke();
    await ack();
  });

  for (const name of ['app_uninstalled', 'tokens_revoked'] as const) {
    app.event(name, async ({ body }) => {
      const raw = body as unknown as { team_id?: string; enterprise_id?: string; authorizations?: { enterprise_id?: string | null; team_id?: string | null; is_enterprise_install?: boolean }[] };
      const authorization = raw.authorizations?.[0];
      const who = { enterpriseId: authorization?.enterprise_id ?? raw.enterprise_id ?? undefined, teamId: authorization?.team_id ?? raw.team_id, isEnterpriseInstall: authorization?.is_enterprise_install ?? false };
      const revoked = await revokeInstallation(domain.db, who, domain.clock.now());
      logger.warn({ event: name, ...who, revoked }, 'slack installation revoked');
    });
  }

  app.event('app_home_opened', async ({ event, body }) => {
    const who = slackIdentity({ ...(body as unknown as Record<string, unknown>), user_id: event.user });
    if (who) await deps.jobs.enqueue(slackPublishHome, { slackUserId: who.userId, tenant: who.tenant });
  });

  const routes = new Hono();
  if (config.SLACK_SIGNING_SECRET) routes.post(SLACK_EVENTS_PATH, (c) => receiver.handle(c));
  routes.route('/', createSlackOAuthApp({ config, db: domain.db, keyring: deps.keyring, clock: domain.clock, logger, jobs: deps.jobs }));

  let socket: SocketModeTransport | undefined;
  let sweep: NodeJS.Timeout | undefined;
  let sweeping: Promise<unknown> | undefined;
  return {
    app,
    receiver,
    routes,
    mount(web) {
      web.route('/', routes);
    },
    get connected() {
      return !config.SLACK_APP_LEVEL_TOKEN || (socket?.connected ?? false);
    },
    async start() {
      if (config.SLACK_APP_LEVEL_TOKEN && !socket) {
        socket = await startSocketMode({ appToken: config.SLACK_APP_LEVEL_TOKEN, apiUrl: config.SLACK_API_URL, receiver, logger });
      }
      sweep ??= setInterval(() => {
        sweeping ??= receiver
          .redeliver()
          .catch((error: unknown) => logger.warn({ err: error }, 'could not look for slack deliveries left unprocessed'))
          .finally(() => (sweeping = undefined));
      }, deps.redeliverySweepMs ?? 5000);
      sweep.unref();
    },
    async stop() {
      clearInterval(sweep);
      sweep = undefined;
      await sweeping;
      await socket?.stop();
      socket = undefined;
      await receiver.flush();
    },
  };
}

function boltLogger(logger: Logger) {
  const child = logger.child({ component: 'bolt' });
  let level = LogLevel.WARN;
  return {
    debug: (...msgs: unknown[]) => child.debug(msgs.map(String).join(' ')),
    info: (...msgs: unknown[]) => child.info(msgs.map(String).join(' ')),
    warn: (...msgs: unknown[]) => child.warn(msgs.map(String).join(' ')),
    error: (...msgs: unknown[]) => child.error(msgs.map(String).join(' ')),
    setLevel: (next: LogLevel) => {
      level = next;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

function parseTarget(metadata: string): { kind: 'control' | 'task'; id: string } | undefined {
  try {
    const parsed = JSON.parse(metadata) as { kind?: unknown; id?: unknown };
    return (parsed.kind === 'control' || parsed.kind === 'task') && typeof parsed.id === 'string' ? { kind: parsed.kind, id: parsed.id } : undefined;
  } catch {
    return undefined;
  }
}
