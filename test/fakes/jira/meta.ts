/**
 * Site metadata endpoints of the fake Jira: `GET /myself` (with the profile `timeZone`, notes A2), `GET /field`,
 * `GET /status`, `GET /user/search`.
 *
 * /myself on Cloud carries accountId, accountType, emailAddress (unless hidden), avatarUrls, displayName, active,
 * timeZone, locale, groups, applicationRoles (Jira Cloud's user bean); on DC the same with `key` and `name` instead
 * of accountId/accountType. /user/search matches `query` against the display name (substring) and the email
 * (exact); a user whose email is hidden (`emailAddress: null`) is found by name only, as the fake holds no email for
 * them (whether real Jira matches a hidden email is unknown). DC also takes `username`.
 */
import type { ApiContext } from './context.ts';
import { STATUSES, errorBody } from './fixtures.ts';
import { fieldList, statusJson, userJson } from './render.ts';
import { type Answer, json } from './wire.ts';

export function myself(ctx: ApiContext): Answer {
  const user = userJson(ctx.caller, ctx.render);
  const { self, avatarUrls, displayName, active, timeZone, ...ids } = user;
  const groups = { size: 1, items: [] };
  const roles = { size: 1, items: [] };
  return json(200, {
    self, ...ids, avatarUrls, displayName, active, timeZone, locale: 'en_US', groups, applicationRoles: roles, expand: 'groups,applicationRoles',
  });
}

export const fields = (ctx: ApiContext): Answer => json(200, fieldList(ctx.store));
export const statuses = (ctx: ApiContext): Answer => json(200, STATUSES.map((s) => statusJson(s, ctx.render)));

export function userSearch(ctx: ApiContext): Answer {
  const query = (ctx.query.get('query') ?? ctx.query.get('username') ?? '').trim().toLowerCase();
  const accountId = ctx.query.get('accountId');
  // GUESS: the wording; Cloud requires one of query or accountId.
  if (query === '' && !accountId) return json(400, errorBody(["The query parameter 'query' is required."]));
  const found = [...ctx.store.users.values()].filter((u) =>
    (accountId !== null && u.accountId === accountId) ||
    (query !== '' && (u.displayName.toLowerCase().includes(query) || u.emailAddress?.toLowerCase() === query || u.name.toLowerCase() === query)));
  const startAt = Math.max(0, Number.parseInt(ctx.query.get('startAt') ?? '0', 10) || 0);
  const maxResults = Math.max(1, Number.parseInt(ctx.query.get('maxResults') ?? '50', 10) || 50);
  return json(200, found.slice(startAt, startAt + maxResults).map((u) => userJson(u, ctx.render)));
}
