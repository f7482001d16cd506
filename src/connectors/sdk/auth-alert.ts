/**
 * Refused credentials, counted per instance on its health row (`integration_health_metrics`), by pulls and
 * writes alike: the second refusal in a row pages the on-call route once (the runbook's rule for 401/403 after a
 * token refresh), with the runbook id. Another kind of failure, or a successful sync, starts the count anew.
 */
import { sql } from 'kysely';
import { newEvent } from '../../domain/events.ts';
import type { ConnectorDefinition, ConnectorInstance, ConnectorRuntime } from './contract.ts';
import type { UpstreamFailure } from './http-client.ts';

/** Error codes of refused credentials (401/403, and the auth providers' own). */
const AUTH_CODES: ReadonlySet<string> = new Set(['unauthorized', 'forbidden', 'oauth_client_refused', 'basic_auth_refused', 'token_endpoint_unavailable', 'invalid_token_response']);

/**
 * A refused credential (401/403 after the token refresh, or a token endpoint that refuses us): counted on the
 * instance's health at every attempt, and the second in a row raises one alert for the on-call route (the
 * runbook's rule), with the runbook id. A success resets the count.
 */
export async function noteAuthFailure<Settings, Client>(input: { runtime: ConnectorRuntime; connector: ConnectorDefinition<Settings, Client>; instance: ConnectorInstance<Settings> }, code: string): Promise<void> {
  const { runtime, instance, connector } = input;
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
          // In a row means auth failures in a row: another kind of failure before this one starts the count anew.
          consecutive_failures: sql<number>`case when ${eb.ref('integration_health_metrics.last_error_code')} = any(${[...AUTH_CODES]}::text[]) then ${eb.ref('integration_health_metrics.consecutive_failures')} + 1 else 1 end`,
          updated_at: now,
        })),
      )
      .returning('consecutive_failures')
      .executeTakeFirstOrThrow();
    if (row.consecutive_failures !== 2) return;
    await runtime.events.emit(
      trx,
      newEvent(
        {
          type: 'integration.auth_failing',
          subject: { kind: 'integration', id: instance.id, label: `${connector.id}:${instance.name}` },
          summary: `${connector.title} (${instance.name}) refused our credentials twice in a row (${code}), after a token refresh. Check the integration user and its OAuth client. Runbook ${connector.runbookId}.`,
          priority: 1,
          data: { connector: connector.id, instance: instance.id, errorCode: code, runbookId: connector.runbookId },
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
