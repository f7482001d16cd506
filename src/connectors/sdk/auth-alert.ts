/**
 * Credentials that keep failing, counted per instance on its health row (`integration_health_metrics`), by pulls
 * and writes alike: the second failure of one kind in a row pages the on-call route once (the runbook's rule for
 * 401/403 after a token refresh), with the runbook id. Another kind of failure, or a successful sync, starts the
 * count anew.
 *
 * The page says what happened, because each sends the on-call somewhere else:
 * - refused: the system or its token endpoint answered that our credentials are wrong (401/403 after a token
 *   refresh, a token endpoint's 400/401 `invalid_client`, a refused user and password): the OAuth client, the
 *   integration user;
 * - unreachable: the token endpoint could not be reached or failed (a network error, a timeout, 5xx): the network
 *   or the instance; nothing refused anything;
 * - unusable: the token endpoint answered, but without a usable token: its OAuth configuration.
 */
import { sql } from 'kysely';
import { newEvent } from '../../domain/events.ts';
import type { ConnectorDefinition, ConnectorInstance, ConnectorRuntime } from './contract.ts';
import type { UpstreamFailure } from './http-client.ts';

export type AuthFailureKind = 'refused' | 'unreachable' | 'unusable';

/** Error codes of failing credentials (401/403, and the auth providers' own), by what happened. */
const CODES: Readonly<Record<AuthFailureKind, readonly string[]>> = {
  refused: ['unauthorized', 'forbidden', 'oauth_client_refused', 'basic_auth_refused'],
  unreachable: ['token_endpoint_unavailable'],
  unusable: ['invalid_token_response'],
};

/** Failures alerted where they are found (a refused refresh token alerts once, with a new consent link): counted here, never paged again. */
const ALERTED_AT_SOURCE: ReadonlySet<string> = new Set(['reauthorization_required']);

/** OAuth 2.0 error codes (RFC 6749 §5.2) worth naming in a page: they say which credential was refused. */
const OAUTH_ERRORS: ReadonlySet<string> = new Set(['invalid_client', 'invalid_grant', 'unauthorized_client', 'invalid_request', 'invalid_scope', 'unsupported_grant_type']);

/** What a failure counted here was: by its code, else (another connector's provider) by how the endpoint answered. */
function authFailureKind(failure: UpstreamFailure): AuthFailureKind {
  for (const [kind, codes] of Object.entries(CODES) as [AuthFailureKind, readonly string[]][]) if (codes.includes(failure.code)) return kind;
  if (failure.kind !== 'auth' || !failure.cause) return 'refused';
  const { cause } = failure;
  return cause.kind === 'http' && cause.status >= 400 && cause.status < 500 && cause.status !== 404 && cause.status !== 408 ? 'refused' : 'unreachable';
}

/** How the token endpoint or the system answered, in words (`HTTP 400 invalid_client`, `the connection failed`). */
function howItAnswered(failure: UpstreamFailure): { text: string | undefined; httpStatus: number | undefined } {
  const answer = failure.kind === 'auth' ? failure.cause : failure;
  if (!answer) return { text: undefined, httpStatus: undefined };
  if (answer.kind === 'network') return { text: answer.code === 'timeout' ? 'no answer within the timeout' : answer.code === 'interrupted' ? 'interrupted' : 'the connection failed', httpStatus: undefined };
  if (answer.kind === 'auth' || answer.status === undefined) return { text: undefined, httpStatus: undefined };
  const error = answer.kind === 'http' ? (answer.body as { error?: unknown } | undefined)?.error : undefined;
  return { text: `HTTP ${answer.status}${typeof error === 'string' && OAUTH_ERRORS.has(error) ? ` ${error}` : ''}`, httpStatus: answer.status };
}

/** The page's sentence for the second failure of a kind in a row. */
function alertSummary(name: string, kind: AuthFailureKind, failure: UpstreamFailure, runbookId: string, guidance: string | undefined): string {
  const { text } = howItAnswered(failure);
  const code = failure.code;
  if (kind === 'unreachable') {
    return `${name} could not reach its token endpoint twice in a row (${text ?? code}); nothing refused our credentials. Check that the instance is up and reachable from ProjectX (network, DNS, proxy, the instance's status) before the credentials. Runbook ${runbookId}.`;
  }
  if (kind === 'unusable') {
    return `${name}'s token endpoint answered twice in a row without a usable access token (${code}); nothing refused our credentials. Check the OAuth endpoint's configuration on the instance. Runbook ${runbookId}.`;
  }
  if (failure.kind === 'auth' && code === 'authorization_required') {
    return `${name} has not been authorized yet: nothing syncs until an admin gives ProjectX access with projectx connectors authorize (OAuth consent). Runbook ${runbookId}.`;
  }
  if (failure.kind === 'auth' && code === 'basic_auth_refused') {
    return `${name} refused our credentials twice in a row: the configured user and password (${code}). Check the integration user and its password. Runbook ${runbookId}.`;
  }
  if (failure.kind === 'auth') {
    return `${name} refused our credentials twice in a row: its token endpoint answered ${text ?? 'with a refusal'} (${code}). Check the OAuth client (its id and secret) and the integration user. Runbook ${runbookId}.`;
  }
  return `${name} refused our credentials twice in a row: ${text ?? 'a refusal'} (${code}), after a token refresh. ${guidance ?? 'Check the integration user, its roles and its OAuth client.'} Runbook ${runbookId}.`;
}

/**
 * Failing credentials (401/403 after the token refresh, or a token endpoint that refuses us, cannot be reached
 * or answers no token): counted on the instance's health at every attempt, and the second of one kind in a row
 * raises one alert for the on-call route (the runbook's rule), saying which it was. A success resets the count.
 */
export async function noteAuthFailure<Settings, Client>(input: { runtime: ConnectorRuntime; connector: ConnectorDefinition<Settings, Client>; instance: ConnectorInstance<Settings> }, failure: UpstreamFailure): Promise<void> {
  const { runtime, instance, connector } = input;
  const { code } = failure;
  const kind = authFailureKind(failure);
  // Codes that continue a run of this kind: its own, and this very code (another connector's provider code).
  const sameKind = [...new Set([...CODES[kind], code])];
  const now = runtime.clock.now();
  await runtime.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('integration_health_metrics')
      .values({ config_id: instance.id, status: 'down', last_run_at: now, last_error_at: now, last_error_code: code, consecutive_failures: 1, updated_at: now })
      .onConflict((oc) =>
        oc.column('config_id').doUpdateSet((eb) => ({
          status: 'down',
          last_error_at: now,
          last_error_code: code,
          // In a row means failures of this kind in a row: any other failure before this one starts the count anew.
          consecutive_failures: sql<number>`case when ${eb.ref('integration_health_metrics.last_error_code')} = any(${sameKind}::text[]) then ${eb.ref('integration_health_metrics.consecutive_failures')} + 1 else 1 end`,
          updated_at: now,
        })),
      )
      .returning('consecutive_failures')
      .executeTakeFirstOrThrow();
    if (row.consecutive_failures !== 2 || ALERTED_AT_SOURCE.has(code)) return;
    const { httpStatus } = howItAnswered(failure);
    await runtime.events.emit(
      trx,
      newEvent(
        {
          type: 'integration.auth_failing',
          subject: { kind: 'integration', id: instance.id, label: `${connector.id}:${instance.name}` },
          summary: alertSummary(`${connector.title} (${instance.name})`, kind, failure, connector.runbookId, connector.authGuidance?.(instance.settings)),
          priority: 1,
          data: { connector: connector.id, instance: instance.id, errorCode: code, failure: kind, ...(httpStatus !== undefined ? { httpStatus } : {}), runbookId: connector.runbookId },
        },
        now,
      ),
    );
  });
}

/** A 401/403 after the client's one token refresh, or an auth provider that could not get a credential. */
export function isAuthFailure(failure: UpstreamFailure): boolean {
  return failure.kind === 'auth' || (failure.kind === 'http' && (failure.status === 401 || failure.status === 403));
}
