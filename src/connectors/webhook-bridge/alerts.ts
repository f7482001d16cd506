/**
 * Repeated signature failures from one partner mean a misconfigured sender or someone probing: the runbook
 * asks for one security notification, not one per request. Each process counts failures per partner in a
 * sliding window; crossing the threshold enqueues `webhooks.security-alert` with a singleton key per partner
 * and a one-hour window, so however many processes cross it, pg-boss keeps one alert per partner and hour. The
 * job emits `security.webhook_signature_failures`, routed like any domain event (seeded: #security-alerts).
 */
import { z } from 'zod';
import type { Clock } from '../../clock.ts';
import { newEvent } from '../../domain/events.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import type { Logger } from '../../logger.ts';

export const ALERT_THRESHOLD = 5;
export const ALERT_WINDOW_MS = 10 * 60_000;
export const ALERT_EVERY_SECONDS = 3600;

export const webhookSecurityAlert = defineJob({
  name: 'webhooks.security-alert',
  schema: z.object({ partner: z.string(), failures: z.number().int().positive(), reasons: z.record(z.string(), z.number().int()), windowMinutes: z.number().int().positive() }),
  policy: { retryLimit: 3 },
  handler: async (payload, { deps }: JobContext<JobDeps>) => {
    const now = deps.clock.now();
    const reasons = Object.entries(payload.reasons).map(([reason, count]) => `${reason} ×${count}`).join(', ');
    const event = newEvent(
      {
        type: 'security.webhook_signature_failures',
        subject: { kind: 'integration', id: payload.partner, label: payload.partner },
        summary: `Webhook partner ${payload.partner}: ${payload.failures} deliveries failed signature checks in ${payload.windowMinutes} minutes (${reasons}). Check the partner's secret, or who is calling.`,
        priority: 2,
        data: { partner: payload.partner, failures: payload.failures, reasons: payload.reasons },
      },
      now,
    );
    await deps.db.transaction().execute((trx) => deps.events.emit(trx, event));
    return { event: event.id };
  },
});

export class SignatureFailureWatch {
  readonly #deps: { jobs: Pick<JobRuntime, 'enqueue'>; clock: Clock; logger: Logger };
  readonly #failures = new Map<string, { at: number; reason: string }[]>();

  constructor(deps: { jobs: Pick<JobRuntime, 'enqueue'>; clock: Clock; logger: Logger }) {
    this.#deps = deps;
  }

  failed(partner: string, reason: string): void {
    const now = this.#deps.clock.now().getTime();
    const recent = (this.#failures.get(partner) ?? []).filter((failure) => now - failure.at < ALERT_WINDOW_MS);
    recent.push({ at: now, reason });
    this.#failures.set(partner, recent.slice(-1000));
    if (recent.length < ALERT_THRESHOLD) return;
    const reasons: Record<string, number> = {};
    for (const failure of recent) reasons[failure.reason] = (reasons[failure.reason] ?? 0) + 1;
    this.#failures.set(partner, []);
    void this.#deps.jobs
      .enqueue(
        webhookSecurityAlert,
        { partner, failures: recent.length, reasons, windowMinutes: ALERT_WINDOW_MS / 60_000 },
        { singletonKey: `webhook-signature:${partner}`, singletonSeconds: ALERT_EVERY_SECONDS },
      )
      .catch((error: unknown) => this.#deps.logger.warn({ err: error, partner }, 'could not queue the webhook security alert'));
  }
}
