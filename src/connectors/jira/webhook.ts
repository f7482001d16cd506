/**
 * Jira's admin webhooks (`POST /api/integrations/jira/webhook`): signed `X-Hub-Signature: sha256=<hex>` with
 * JIRA_WEBHOOK_SECRET over the raw body, one id per delivery in `X-Atlassian-Webhook-Identifier` (stable across
 * Jira's retries: the dedupe key), no signed header time, so the body's `timestamp` (ms, signed with it) must be
 * under an hour old (Jira retries for up to 30 minutes). Bodies use the REST v2 representation (the docs'
 * example in ../shared/fixtures/jira_webhook_issue_updated_docs.json).
 *
 * - `jira:issue_created`, `jira:issue_updated`, `comment_created|updated|deleted`: the issue is fetched by id
 *   at the end of the debounce window and stored like a synced record (an unchanged one is no change).
 * - `jira:issue_deleted`: the same fetch finds it gone, and it is flagged (its open task cancelled).
 * - Anything else (sprints, worklogs, versions…): answered 202 and ignored.
 */
import { z } from 'zod';
import type { ConnectorWebhook } from '../sdk/contract.ts';

const ISSUE_EVENTS = new Set(['jira:issue_created', 'jira:issue_updated', 'comment_created', 'comment_updated', 'comment_deleted']);

const body = z.object({ webhookEvent: z.string().min(1).max(200), issue: z.object({ id: z.string().regex(/^\d{1,18}$/, 'must be a numeric issue id') }).optional() });

export const jiraWebhook: ConnectorWebhook = {
  scheme: 'hub-signature',
  signatureHeader: 'x-hub-signature',
  idHeader: 'x-atlassian-webhook-identifier',
  sentAtMs: (json) => {
    const timestamp = (json as { timestamp?: unknown } | null)?.timestamp;
    return typeof timestamp === 'number' && Number.isFinite(timestamp) ? timestamp : undefined;
  },
  maxAgeSeconds: 3600,
  secretField: 'webhook_secret',
  debounceSeconds: 5,
  payload: body.transform((event, ctx) => {
    const issueEvent = ISSUE_EVENTS.has(event.webhookEvent) || event.webhookEvent === 'jira:issue_deleted';
    if (!issueEvent) return { ignore: event.webhookEvent };
    if (!event.issue) {
      ctx.addIssue({ code: 'custom', path: ['issue'], message: `${event.webhookEvent} must name its issue` });
      return z.NEVER;
    }
    return { model: 'issue', externalId: event.issue.id, ...(event.webhookEvent === 'jira:issue_deleted' ? { gone: true } : {}) };
  }),
};
