/**
 * Microsoft Teams as a module. Web role: `POST /api/messages` behind botbuilder's CloudAdapter (every activity's
 * token checked, src/bot/teams/adapter.ts), then, in order, for an authenticated activity:
 *
 * 1. its tenant must be served and it is recorded once in `inbound_events` (src/bot/teams/inbound.ts): a
 *    redelivery has no second effect (a redelivered invoke gets the answer the first one got);
 * 2. its conversation is stored (a reference for proactive messages; inactive on uninstall), the sender's Teams
 *    id remembered;
 * 3. the turn runs on the command layer with database work only (src/bot/teams/surface.ts): an invoke is
 *    answered from it inside Teams' time limit; a reply (a message's answer, the welcome card on install) is
 *    staged with the delivery and sent by a job, as are evidence files' uploads (src/bot/teams/evidence*.ts);
 *    an unlinked person's roster lookup is queued.
 *
 * A failure answers 503 with Retry-After when the database is unreachable (the channel retries), else 200 with
 * the delivery marked failed for an operator (an invoke gets a message saying so, with a reference); never 500.
 *
 * Worker role (with an app password): the sender (paced, idempotent), the notifier and re-renderer for routed
 * notifications and card updates, and the jobs that send replies, download evidence files and link people by
 * the roster.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Counter } from 'prom-client';
import { defineModule } from '../../module.ts';
import { errorBody } from '../../http/errors.ts';
import { isTransient } from '../../db/connect.ts';
import { createTeamsAdapter, teamsAuthSettings } from './adapter.ts';
import { toAdaptiveCard } from './cards.ts';
import { conversationKind, teamsIdentity } from './commands.ts';
import { createConversationStore, createUserMemory, membershipChange } from './conversations.ts';
import { activityTenant, allowedTenants, createTeamsInbox, settleTeamsActivity, teamsDeliveryId } from './inbound.ts';
import { settleWithEvidence, teamsEvidenceSubmissions, teamsEvidenceUpload } from './evidence-upload.ts';
import { teamsLinkByRoster } from './link-by-roster.ts';
import { createTeamsNotifier, createTeamsRerenderer } from './notifier.ts';
import { type StagedResult, teamsReplies, teamsReply } from './replies.ts';
import { TEAMS_MESSAGES_PATH, type TeamsAnswer, createTeamsRoute } from './route.ts';
import { TeamsSender } from './sender.ts';
import { type TurnOutcome, handleTeamsTurn } from './surface.ts';
import { welcomeMessage } from './welcome.ts';

const OK: TeamsAnswer = { status: 200 };

/**
 * Extra CAs for the Entra ID token call: Node reads NODE_EXTRA_CA_CERTS for its default agent at start-up only,
 * while MSAL is given an agent of its own here; the public roots stay trusted.
 */
function outboundCa(): string[] | undefined {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return undefined;
  return [...rootCertificates, readFileSync(file, 'utf8')];
}

export const teamsModule = defineModule({
  id: 'teams',
  title: 'Microsoft Teams',
  kind: 'surface',
  configuredBy: [
    ['MICROSOFT_APP_ID', 'MICROSOFT_APP_PASSWORD', 'MICROSOFT_APP_TENANT_ID'],
    ['MICROSOFT_APP_ID', 'MICROSOFT_APP_PASSWORD', 'MICROSOFT_APP_TYPE'],
    ['MICROSOFT_APP_ID', 'MICROSOFT_APP_TYPE', 'MICROSOFT_APP_TENANT_ID'],
  ],
  routes: [{ method: 'POST', path: TEAMS_MESSAGES_PATH }],
  jobs: [teamsReplies, teamsReply, teamsLinkByRoster, teamsEvidenceSubmissions, teamsEvidenceUpload],
  stagedJobs: [teamsReplies, teamsEvidenceSubmissions],
  metrics: ['teams_auth_failures_total', 'teams_refused_activities_total', 'teams_duplicate_activities_total', 'teams_send_outcome_unknown_total'],
  start(ctx) {
    const { config, logger, db, clock, metrics } = ctx;
    const settings = teamsAuthSettings(config);
    if (!settings) return {};
    const ca = outboundCa();
    const adapter = createTeamsAdapter(settings, ca ? { outboundCa: ca } : {});
    const canSend = Boolean(settings.appPassword) || settings.appType === 'UserAssignedMSI';
    const sender = ctx.worker && canSend ? new TeamsSender({ db, clock, logger, adapter, metrics }) : undefined;
    const parts = {
      notifiers: sender ? [createTeamsNotifier(db, sender)] : [],
      rerenderers: sender ? [createTeamsRerenderer(db, sender, logger)] : [],
      jobDeps: { teams: sender ? { sender, adapter } : undefined },
    };
    if (!ctx.web) return parts;

    const tenants = allowedTenants(config);
    const refused = new Counter({ name: 'teams_refused_activities_total', help: 'Authenticated Teams activities refused (tenant not served, malformed), by code', labelNames: ['code'], registers: [metrics.registry] });
    const duplicates = new Counter({ name: 'teams_duplicate_activities_total', help: 'Teams activities delivered again after they were recorded (no second effect)', registers: [metrics.registry] });
    const remember = createUserMemory(db, clock);
    const storeConversation = createConversationStore({ db, clock });
    const inbox = createTeamsInbox({ db, clock, tenants, keyring: ctx.keyring, logger });
    const botId = `28:${settings.appId}`;
    const surfaceDeps = { domain: ctx.domain, integrations: ctx.integrations, identities: ctx.identities, botId, keepsFiles: ctx.keyring !== undefined };

    const logic = async (activity: Record<string, unknown>): Promise<TeamsAnswer> => {
      const delivery = await inbox.record(activity);
      if (delivery.kind === 'refused') {
        refused.inc({ code: delivery.code });
        logger.warn({ code: delivery.code, type: String(activity.type).slice(0, 64) }, 'teams activity refused');
        return { status: 403, body: errorBody(delivery.code, delivery.message) };
      }
      if (delivery.kind === 'duplicate') {
        duplicates.inc();
        return repeatAnswer(activity);
      }
      const tenant = activityTenant(activity)!;
      try {
        const change = membershipChange(activity);
        await storeConversation(activity, tenant, change === undefined ? undefined : change === 'added');
        await remember(activity, tenant);
        const result: StagedResult = {};
        let outcome: TurnOutcome = {};
        if (change === 'added') {
          const welcome = welcomeMessage(conversationKind(activity));
          result.reply = { text: welcome.text, card: toAdaptiveCard(welcome) };
        } else if (change === undefined) {
          outcome = await handleTeamsTurn(surfaceDeps, activity, tenant, { inboundId: delivery.inboundId });
          if (outcome.reply) result.reply = outcome.reply;
          if (outcome.invoke) result.invoke = outcome.invoke;
          if (outcome.unlinked) await queueRosterLookup(activity, tenant);
        }
        // Files sent as evidence are written with the delivery, their upload staged with it once its target is known.
        if (outcome.evidence) await settleWithEvidence(db, delivery.inboundId, result, outcome.evidence, clock.now());
        else await inbox.settle(delivery.inboundId, result);
        if (result.reply || outcome.evidence || outcome.staged) ctx.outbox.poke();
        return result.invoke ?? OK;
      } catch (error) {
        const code = isTransient(error) ? 'storage_unavailable' : 'processing_failed';
        const reference = delivery.inboundId;
        logger.error({ err: error, inboundId: reference, type: String(activity.type).slice(0, 64) }, 'teams activity failed');
        await settleTeamsActivity({ db, clock }, delivery.inboundId, { code, message: error instanceof Error ? error.message.slice(0, 500) : 'failed' }).catch(() => undefined);
        if (code === 'storage_unavailable') return { status: 503, body: errorBody(code, 'the service cannot reach its database; try again'), headers: { 'retry-after': '5' } };
        return activity.type === 'invoke' ? invokeMessage(`Something went wrong and nothing was done (reference ${reference}). Try again, or ask an admin.`) : OK;
      }
    };

    /** A redelivered invoke gets the answer the first got (or word that it is still being processed). */
    async function repeatAnswer(activity: Record<string, unknown>): Promise<TeamsAnswer> {
      if (activity.type !== 'invoke') return OK;
      const row = await db.selectFrom('inbound_events').select(['status', 'result']).where('source', '=', 'teams').where('delivery_id', '=', teamsDeliveryId(activity) ?? '').executeTakeFirst();
      const invoke = (row?.result as StagedResult | null)?.invoke;
      return invoke ? { status: invoke.status, body: invoke.body } : invokeMessage('That click is already being processed.');
    }

    async function queueRosterLookup(activity: Record<string, unknown>, tenant: string): Promise<void> {
      const identity = teamsIdentity(activity, tenant);
      const memberId = typeof (activity.from as { id?: unknown } | undefined)?.id === 'string' ? (activity.from as { id: string }).id : undefined;
      const conversationId = (activity.conversation as { id?: unknown } | undefined)?.id;
      if (!identity || !memberId || typeof conversationId !== 'string' || !canSend) return;
      // Never on the answer's path: one lookup per person at a time, failures only logged (they can use `link`).
      await ctx.jobs
        .enqueue(teamsLinkByRoster, { tenant, aadObjectId: identity.externalId, memberId, conversationId }, { singletonKey: `${tenant}:${identity.externalId}` })
        .catch((error: unknown) => logger.warn({ err: error }, 'could not queue the roster lookup'));
    }

    return { ...parts, routes: createTeamsRoute({ adapter, logger, metrics, logic }), stop: () => inbox.flush() };
  },
});

function invokeMessage(text: string): TeamsAnswer {
  return { status: 200, body: { statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: text } };
}
