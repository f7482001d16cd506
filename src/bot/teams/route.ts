/**
 * `POST /api/messages`: where the Bot Framework channel delivers Teams activities. The body must be a JSON
 * activity with a `type` (else 400); the `Authorization` header is authenticated by botbuilder's CloudAdapter
 * (src/bot/teams/adapter.ts). Every refusal answers 401 in our error envelope with the reason as its code, is
 * counted in `teams_auth_failures_total{reason}` and logged with the reason only (never the token). An
 * authenticated activity is answered with what the surface's logic returns (src/bot/teams/module.ts). Should
 * that logic throw anyway, the answer is 503 `processing_failed` (logged), never a 500: the channel may retry.
 */
import { Hono } from 'hono';
import { Counter } from 'prom-client';
import { errorBody } from '../../http/errors.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { TEAMS_AUTH_FAILURES, type TeamsAdapter, type TeamsAuthFailure } from './adapter.ts';

export const TEAMS_MESSAGES_PATH = '/api/messages';

/** What each refusal says (never what the token held). */
const MESSAGES: Record<TeamsAuthFailure, string> = {
  missing_token: 'the request carries no Bot Framework token',
  invalid_token: 'the Bot Framework token is not valid',
  invalid_signature: 'the Bot Framework token\'s signature is not valid',
  invalid_algorithm: 'the Bot Framework token is not signed with an accepted algorithm',
  unsigned_token: 'the Bot Framework token is not signed',
  expired_token: 'the Bot Framework token has expired',
  token_not_yet_valid: 'the Bot Framework token is not valid yet',
  wrong_issuer: 'the Bot Framework token was not issued by the channel',
  wrong_audience: 'the Bot Framework token is meant for another app',
  unknown_signing_key: 'the Bot Framework token is signed with an unknown key',
  not_endorsed: 'the Bot Framework token\'s key is not endorsed for this channel',
  service_url_mismatch: 'the Bot Framework token was issued for another service URL',
  skill_token: 'skill tokens are not accepted',
};

export interface TeamsRouteDeps {
  adapter: TeamsAdapter;
  logger: Logger;
  metrics: Metrics;
  /** Runs an authenticated activity (the surface): the HTTP status and JSON body to answer with (none: empty). */
  logic: (activity: Record<string, unknown>) => Promise<TeamsAnswer>;
}

export interface TeamsAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export function createTeamsRoute(deps: TeamsRouteDeps): Hono {
  const failures = new Counter({ name: 'teams_auth_failures_total', help: 'Teams activities refused by Bot Framework authentication, by reason', labelNames: ['reason'], registers: [deps.metrics.registry] });
  for (const reason of TEAMS_AUTH_FAILURES) failures.inc({ reason }, 0);
  const routes = new Hono();
  routes.post(TEAMS_MESSAGES_PATH, async (c) => {
    let activity: unknown;
    try {
      activity = await c.req.json();
    } catch {
      return c.json(errorBody('malformed_body', 'the request body is not JSON'), 400);
    }
    if (activity === null || typeof activity !== 'object' || Array.isArray(activity) || typeof (activity as { type?: unknown }).type !== 'string') {
      return c.json(errorBody('malformed_activity', 'the request body is not a Bot Framework activity (an object with a type)'), 400);
    }
    let result: Awaited<ReturnType<TeamsAdapter['process']>>;
    try {
      result = await deps.adapter.process(c.req.header('authorization') ?? '', activity as Record<string, unknown>, deps.logic);
    } catch (error) {
      deps.logger.error({ err: error }, 'teams activity could not be processed');
      return c.json(errorBody('processing_failed', 'the activity could not be processed; try again'), 503, { 'retry-after': '5' });
    }
    if (!result.ok) {
      failures.inc({ reason: result.reason });
      deps.logger.warn({ reason: result.reason, path: c.req.path }, 'teams activity refused: Bot Framework authentication failed');
      return c.json(errorBody(result.reason, MESSAGES[result.reason]), 401);
    }
    const answer = result.value as TeamsAnswer;
    for (const [name, value] of Object.entries(answer.headers ?? {})) c.header(name, value);
    return answer.body === undefined ? c.body(null, answer.status as 200) : c.json(answer.body as object, answer.status as 200);
  });
  return routes;
}
