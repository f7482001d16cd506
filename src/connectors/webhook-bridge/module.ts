/**
 * The webhook bridge as a module: partner webhooks in (`POST /api/integration/webhook/:key`, web role; their
 * processing and security alerts as jobs), event subscriptions out (the delivery job, with one SSRF-guarded
 * agent per worker), the operator verbs over partners, deliveries and subscriptions, and their secrets (partner
 * secrets, subscription signing secrets and subscription URLs). At start, with a key, it encrypts subscription
 * URLs still stored in plaintext (written before URLs were encrypted).
 */
import { defineModule } from '../../module.ts';
import { webhookSecurityAlert } from './alerts.ts';
import { partnersVerb, webhooksVerb } from './cli.ts';
import { WEBHOOK_PATH, createWebhookReceiver } from './inbound.ts';
import { subscriptionsVerb } from './outbound/cli.ts';
import { deliverWebhook } from './outbound/deliver.ts';
import { createOutboundTransport } from './outbound/destination.ts';
import { protectStoredUrls, subscriptionSecretAad, subscriptionUrlAad } from './outbound/subscriptions.ts';
import { createPartnerDirectory, partnerSecretAad } from './partners.ts';
import { webhookProcess } from './process.ts';

export const webhookBridgeModule = defineModule({
  id: 'webhook-bridge',
  title: 'Partner webhooks',
  kind: 'surface',
  // Partners are added with `projectx partners add`; GENERIC_WEBHOOK_SECRET only adds the `generic` one.
  configuredBy: [],
  routes: [{ method: 'POST', path: WEBHOOK_PATH }],
  jobs: [webhookProcess, webhookSecurityAlert, deliverWebhook],
  stagedJobs: [webhookProcess],
  verbs: [partnersVerb, webhooksVerb, subscriptionsVerb],
  metrics: ['webhook_failures_total', 'webhook_deliveries_total'],
  secrets: [
    {
      title: 'partner webhook secrets',
      async rotate(trx, { again }) {
        for (const row of await trx.selectFrom('webhook_partner_secrets').select(['id', 'partner_key', 'secret']).forUpdate().execute()) {
          const rotated = again('webhook_partner_secret', row.id, row.secret, partnerSecretAad(row.partner_key, row.id));
          if (rotated) await trx.updateTable('webhook_partner_secrets').set({ secret: JSON.stringify(rotated) }).where('id', '=', row.id).execute();
        }
      },
    },
    {
      title: 'subscription signing secrets',
      async rotate(trx, { again }) {
        for (const row of await trx.selectFrom('webhook_subscriptions').select(['id', 'secret']).forUpdate().execute()) {
          const rotated = again('webhook_subscription_secret', row.id, row.secret, subscriptionSecretAad(row.id));
          if (rotated) await trx.updateTable('webhook_subscriptions').set({ secret: JSON.stringify(rotated) }).where('id', '=', row.id).execute();
        }
      },
    },
    {
      title: 'subscription URLs',
      async rotate(trx, { again }) {
        for (const row of await trx.selectFrom('webhook_subscriptions').select(['id', 'url_encrypted']).where('url_encrypted', 'is not', null).forUpdate().execute()) {
          const rotated = again('webhook_subscription_url', row.id, row.url_encrypted, subscriptionUrlAad(row.id));
          if (rotated) await trx.updateTable('webhook_subscriptions').set({ url_encrypted: JSON.stringify(rotated) }).where('id', '=', row.id).execute();
        }
      },
    },
  ],
  async start(ctx) {
    await protectStoredUrls(ctx.db, ctx.keyring, ctx.logger);
    const transport = ctx.worker ? createOutboundTransport({ allowedNetworks: ctx.config.OUTBOUND_WEBHOOK_ALLOWED_NETWORKS ?? [] }) : undefined;
    if (!ctx.web) return { jobDeps: { outboundTransport: transport }, stop: async () => transport?.close() };
    const partners = await createPartnerDirectory({ db: ctx.db, keyring: ctx.keyring, config: ctx.config, connectionString: ctx.connectionString, logger: ctx.logger, metrics: ctx.metrics });
    const receiver = createWebhookReceiver({ db: ctx.db, jobs: ctx.jobs, outbox: ctx.outbox, partners, clock: ctx.clock, logger: ctx.logger, metrics: ctx.metrics });
    return {
      routes: receiver.app,
      jobDeps: { outboundTransport: transport },
      onBodyTooLarge: (c) => receiver.bodyTooLarge(c),
      // Batches still being written (their requests may have been cut off) commit before the outbox's last relay.
      drain: () => receiver.flush(),
      async stop() {
        await partners.close();
        await transport?.close();
      },
    };
  },
});
