/**
 * Email as a module, both ways: out (worker role, with `SMTP_HOST` and `SMTP_FROM_ADDRESS`): the email
 * notifier; in (web role, with `SMTP_INBOUND_PORT`): the SMTP listener for mail the organisation's MTA relays,
 * processed by the `email.process` job; and the `projectx email` verb over what waits for an operator.
 */
import { defineModule } from '../../module.ts';
import { emailVerb } from './cli.ts';
import { startSmtpListener } from './listener.ts';
import { createEmailNotifier } from './notifier.ts';
import { emailProcess } from './process.ts';
import { createMailSender } from './transport.ts';

export const emailModule = defineModule({
  id: 'email',
  title: 'Email (SMTP)',
  kind: 'surface',
  configuredBy: [['SMTP_HOST', 'SMTP_FROM_ADDRESS'], ['SMTP_INBOUND_PORT']],
  jobs: [emailProcess],
  verbs: [emailVerb],
  metrics: ['email_inbound_total'],
  readiness: ['smtp_listener'],
  async start(ctx) {
    const { config, logger } = ctx;
    const mail = ctx.worker ? createMailSender(config, logger) : undefined;
    const listener =
      ctx.web && config.SMTP_INBOUND_PORT !== undefined
        ? await startSmtpListener({ db: ctx.db, jobs: ctx.jobs, clock: ctx.clock, logger, metrics: ctx.metrics, host: config.SMTP_INBOUND_HOST, port: config.SMTP_INBOUND_PORT, allowedNetworks: config.SMTP_INBOUND_ALLOWED_NETWORKS })
        : undefined;
    if (listener) logger.info({ host: listener.host, port: listener.port }, `inbound email: SMTP listening on ${listener.host}:${listener.port}`);
    return {
      notifiers: mail ? [createEmailNotifier(ctx.db, mail)] : [],
      listeners: listener ? [{ name: 'smtp', host: listener.host, port: listener.port }] : [],
      readiness: listener
        ? [
            {
              name: 'smtp_listener',
              check: () => (listener.listening ? Promise.resolve() : Promise.reject(new Error(`the SMTP listener on ${listener.host}:${listener.port} is closed`))),
            },
          ]
        : [],
      async stop() {
        await listener?.close();
        mail?.close();
      },
    };
  },
});
