/**
 * The fake Jira's webhook emitter (`sendWebhook`): v2-shaped bodies, Atlassian's delivery headers and retries.
 *
 * Bodies (notes A4): `{timestamp (ms), webhookEvent, issue_event_type_name?, user?, issue?, changelog?, comment?}`,
 * issues in the REST v2 representation (`self` under /rest/api/2, description a string) as the fake holds them.
 * - `jira:issue_updated`: like the docs example (test/fixtures/jira/jira_webhook_issue_updated_docs.json), with
 *   `changelog: {id (a number), items: [{field, fieldtype, from, fromString, to, toString}]}` (the event's items, else
 *   the issue's latest changelog entry) and `issue_event_type_name` 'issue_assigned' when only the assignee changed,
 *   else 'issue_generic' (the example's). The example's `accoundId` typo and `"active": "true"` string are NOT
 *   reproduced: users carry `accountId` and a boolean, as the deleted-issue capture does.
 * - `jira:issue_deleted`: like the 2020 Cloud capture the notes describe (owasp-sbot/OSBot-Jira): `{timestamp,
 *   webhookEvent, user, issue}`, no issue_event_type_name, no changelog.
 * - `jira:issue_created`: no published example; built from the deleted capture's envelope plus
 *   `issue_event_type_name: 'issue_created'`, without changelog (GUESS, as the notes say jira.js assumes).
 * - `comment_created` / `comment_updated`: `{timestamp, webhookEvent, comment, issue: {id, self, key, fields: {summary,
 *   status, priority, assignee, issuetype}}}`, no top-level user (the notes' single capture, unconfirmed).
 * - `sprint_*`: `{timestamp, webhookEvent, sprint}` (the agile API's sprint object; GUESS).
 * The top-level `user` carries no emailAddress (neither source shows one).
 * Delivery (notes A4: Atlassian's retry-policy announcement; header names from jira.js `src/webhooks/headers.ts`):
 * POST with `Content-Type: application/json`, `User-Agent: Atlassian Webhook HTTP Client`,
 * `X-Atlassian-Webhook-Identifier` (the same on every retry), `X-Atlassian-Webhook-Retry` (absent on the first try,
 * then 1, 2, …), `X-Atlassian-Webhook-Flow: Primary`, and with a secret `X-Hub-Signature: sha256=<lowercase hex
 * HMAC-SHA256(raw body, secret)>`. Retries on 408, 409, 425, 429, 5xx and connection errors or timeouts.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sprintJson } from './agile.ts';
import type { ChangelogItem, JiraUser, WebhookEvent, WebhookOptions, WebhookResult } from './types.ts';
import { commentJson, fieldsJson, parseFields, priorityJson, issueTypeJson, statusJson, userJson, type RenderContext } from './render.ts';
import type { StoredIssue } from './store.ts';

export interface WebhookDeps {
  /** v2 rendering on the site URL. */
  render: RenderContext;
  nowMs: () => number;
  apiUser: JiraUser;
}
type Json = Record<string, unknown>;

/** `sha256=<lowercase hex HMAC-SHA256(body, secret)>`. */
export const hubSignature = (secret: string, body: string | Buffer): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

const RETRYABLE = new Set([408, 409, 425, 429]);
const retryable = (status: number | 'error'): boolean => status === 'error' || RETRYABLE.has(status) || status >= 500;

export function webhookBody(deps: WebhookDeps, event: WebhookEvent): string {
  if (event.body !== undefined) return typeof event.body === 'string' ? event.body : JSON.stringify(event.body);
  const { render } = deps;
  const { store } = render;
  const issue: StoredIssue | undefined = event.issue === undefined ? undefined : store.getAny(event.issue);
  if (event.issue !== undefined && !issue) throw new Error(`fake Jira: no issue ${event.issue} (live or deleted) for the webhook`);
  const actor = store.user(event.user ?? deps.apiUser.accountId);
  if (!actor) throw new Error(`fake Jira: no user ${event.user ?? ''} for the webhook`);
  const { emailAddress: _email, ...user } = userJson(actor, render);
  const issueV2 = (i: StoredIssue): Json => ({ id: i.id, self: `${render.base}/rest/api/2/issue/${i.id}`, key: i.key, fields: fieldsJson(i, parseFields(undefined, '*all'), render) });
  const out: Json = { timestamp: deps.nowMs(), webhookEvent: event.webhookEvent };
  const kind = event.webhookEvent;

  if (kind.startsWith('comment_')) {
    if (!issue) throw new Error('fake Jira: a comment webhook needs an issue');
    const comment = issue.comments.find((c) => c.id === event.commentId) ?? issue.comments.at(-1);
    if (!comment) throw new Error(`fake Jira: ${issue.key} has no comment ${event.commentId ?? ''}`);
    out.comment = commentJson(issue, comment, render);
    out.issue = {
      id: issue.id, self: `${render.base}/rest/api/2/issue/${issue.id}`, key: issue.key,
      fields: {
        summary: issue.summary, status: statusJson(issue.status, render), priority: priorityJson(issue.priority, render),
        assignee: issue.assignee === null ? null : userJson(store.user(issue.assignee) ?? deps.apiUser, render), issuetype: issueTypeJson(issue.issuetype, render),
      },
    };
    return JSON.stringify(out);
  }
  if (kind.startsWith('sprint_')) {
    const sprint = store.sprints.find((s) => s.id === event.sprintId);
    if (sprint) out.sprint = sprintJson(render.base, render.zone, sprint);
    return JSON.stringify(out);
  }
  let items: ChangelogItem[] | undefined;
  let changelogId: number | undefined;
  if (kind === 'jira:issue_updated') {
    const latest = issue?.changelog.at(-1);
    items = event.changelogItems
      ? event.changelogItems.map((i) => ({ field: i.field, fieldtype: 'jira', from: i.from ?? null, fromString: i.fromString ?? null, to: i.to ?? null, toString: i.toString ?? null }))
      : (latest?.items.map(({ fieldId: _id, ...rest }) => rest) ?? []);
    changelogId = event.changelogItems || !latest ? store.nextId() : Number(latest.id);
    out.issue_event_type_name = items.length > 0 && items.every((i) => i.field === 'assignee') ? 'issue_assigned' : 'issue_generic';
  } else if (kind === 'jira:issue_created') {
    out.issue_event_type_name = 'issue_created';
  }
  out.user = user;
  if (issue) out.issue = issueV2(issue);
  if (items) out.changelog = { id: changelogId, items };
  return JSON.stringify(out);
}

export async function deliver(target: string, body: string, options: WebhookOptions = {}): Promise<WebhookResult> {
  const identifier = options.identifier ?? randomUUID();
  const delays = options.retryDelaysMs ?? [0, 0, 0, 0, 0];
  const attempts: WebhookResult['attempts'] = [];
  for (let attempt = 0; attempt <= delays.length; attempt++) {
    if (attempt > 0) await sleep(delays[attempt - 1] ?? 0);
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': 'Atlassian Webhook HTTP Client',
      'X-Atlassian-Webhook-Identifier': identifier,
      'X-Atlassian-Webhook-Flow': 'Primary',
      ...(attempt > 0 ? { 'X-Atlassian-Webhook-Retry': String(attempt) } : {}),
      ...(options.secret !== undefined ? { 'X-Hub-Signature': hubSignature(options.secret, body) } : {}),
    };
    let status: number | 'error';
    try {
      const res = await fetch(target, { method: 'POST', headers, body, signal: AbortSignal.timeout(options.timeoutMs ?? 20_000) });
      status = res.status;
      await res.arrayBuffer();
    } catch {
      status = 'error';
    }
    attempts.push({ status });
    if (!retryable(status)) break;
  }
  return { identifier, attempts };
}
