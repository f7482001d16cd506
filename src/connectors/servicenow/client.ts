/**
 * ServiceNow over HTTP: the Table API and the token endpoint, through the connectors' one HTTP client.
 *
 * Auth: OAuth 2.0 client credentials (`POST /oauth_token.do`, form-encoded as ServiceNow requires; the token is
 * cached and shared across processes by src/connectors/sdk/oauth.ts), or basic auth (`SERVICENOW_USER` /
 * `SERVICENOW_PASSWORD`), the runbook's fallback: used alone when no OAuth client is configured, and instead of
 * OAuth when the token endpoint refuses the client.
 */
import { z } from 'zod';
import type { ConnectorInstance, ConnectorRuntime } from '../sdk/contract.ts';
import type { Keyring } from '../sdk/crypto.ts';
import { type AuthProvider, AuthUnavailable, type HttpClient, type UpstreamFailure, type UpstreamResult, createHttpClient } from '../sdk/http-client.ts';
import { basicAuth, createTokenSource } from '../sdk/oauth.ts';

export const serviceNowSettings = z.object({
  baseUrl: z.url({ protocol: /^https?$/ }),
  /** OAuth client id (its secret is the `client_secret` credential); absent: basic auth only. */
  clientId: z.string().min(1).optional(),
  /** Basic-auth user (its password is the `password` credential). */
  user: z.string().min(1).optional(),
  pageSize: z.number().int().min(1).max(10_000).default(500),
  /** Each incremental run starts this far before the last checkpoint (late commits at the same second). */
  overlapSeconds: z.number().int().min(0).max(3600).default(60),
  timeoutMs: z.number().int().min(100).max(120_000).default(15_000),
  /** What an acknowledgement from chat writes besides its work note (state code; assignment group sys_id). */
  ack: z.object({ state: z.string().regex(/^\d+$/).optional(), assignmentGroup: z.string().regex(/^[0-9a-f]{32}$/).optional() }).default({}),
  /** Who gets the review task of a new P1 incident (a ProjectX user's email); unset: unassigned. */
  reviewAssignee: z.email().optional(),
  /** Remediation tasks created in ProjectX become records of ServiceNow's task table. */
  pushRemediationTasks: z.boolean().default(true),
});
export type ServiceNowSettings = z.infer<typeof serviceNowSettings>;

export interface TableListQuery {
  query: string;
  fields: readonly string[];
  limit: number;
}

export interface ServiceNowClient {
  http: HttpClient;
  list(table: string, query: TableListQuery): Promise<UpstreamResult<{ result: unknown[] }>>;
  close(): Promise<void>;
}

const tokenAnswer = z.object({ access_token: z.string().min(1), expires_in: z.coerce.number().int().positive() });

export function createServiceNowClient(instance: ConnectorInstance<ServiceNowSettings>, runtime: ConnectorRuntime & { keyring: Keyring }): ServiceNowClient {
  const { settings } = instance;
  // Times the system gives (Retry-After) are compared with the service's clock, as every other wait is.
  const base = { connector: 'servicenow', baseUrl: settings.baseUrl, metrics: runtime.metrics, timeoutMs: settings.timeoutMs, now: () => runtime.clock.now().getTime() };
  // The token endpoint is called without credentials in headers (they travel in the form).
  const tokenHttp = createHttpClient(base);
  const basic = settings.user && instance.credential('password') !== undefined ? basicAuth(settings.user, instance.credential('password')!) : undefined;
  let auth: AuthProvider | undefined = basic;
  if (settings.clientId && instance.credential('client_secret') !== undefined) {
    const oauth = createTokenSource({
      db: runtime.db,
      keyring: runtime.keyring,
      instanceId: instance.id,
      clock: runtime.clock,
      logger: runtime.logger,
      grant: async () => {
        const answer = await tokenHttp.send<unknown>({
          method: 'POST',
          path: '/oauth_token.do',
          form: { grant_type: 'client_credentials', client_id: settings.clientId!, client_secret: instance.credential('client_secret')! },
          anonymous: true,
          idempotent: true,
        });
        if (!answer.ok) throw new AuthUnavailable(refusedByTokenEndpoint(answer.failure) ? 'oauth_client_refused' : 'token_endpoint_unavailable', 'ServiceNow did not issue an access token', answer.failure);
        const token = tokenAnswer.safeParse(answer.value.body);
        if (!token.success) throw new AuthUnavailable('invalid_token_response', 'ServiceNow answered the token request without a usable token');
        return { accessToken: token.data.access_token, expiresInSeconds: token.data.expires_in };
      },
    });
    auth = basic ? withFallback(oauth, basic, runtime) : oauth;
  }
  const http = createHttpClient({ ...base, auth });
  return {
    http,
    list: (table, query) =>
      http.send<{ result: unknown[] }>({
        method: 'GET',
        path: `/api/now/table/${encodeURIComponent(table)}`,
        query: { sysparm_query: query.query, sysparm_fields: query.fields.join(','), sysparm_limit: query.limit, sysparm_exclude_reference_link: 'true', sysparm_display_value: 'false' },
      }),
    close: async () => {
      await Promise.all([http.close(), tokenHttp.close()]);
    },
  };
}

/**
 * The token endpoint said no to our client: 401 (ServiceNow's answer to a wrong client id or secret), or 400 and
 * 403 (RFC 6749 §5.2: `invalid_client`, `invalid_grant`, `unauthorized_client`). Anything else (no answer, a
 * timeout, 5xx, a 404 where the endpoint should be) means it could not be reached or is not working.
 */
function refusedByTokenEndpoint(failure: UpstreamFailure): boolean {
  return failure.kind === 'http' && (failure.status === 400 || failure.status === 401 || failure.status === 403);
}

/** OAuth, and basic auth when the token endpoint refuses our client (the runbook's fallback). */
function withFallback(oauth: AuthProvider, basic: AuthProvider, runtime: ConnectorRuntime): AuthProvider {
  let fallenBack = false;
  const fallBack = (error: unknown) => {
    if (!(error instanceof AuthUnavailable) || error.code !== 'oauth_client_refused') throw error;
    if (!fallenBack) runtime.logger.warn({ connector: 'servicenow' }, 'ServiceNow refused the OAuth client; using basic auth (runbook fallback)');
    fallenBack = true;
    return basic.authorization();
  };
  return {
    authorization: () => (fallenBack ? basic.authorization() : oauth.authorization().catch(fallBack)),
    refresh: async () => {
      if (fallenBack) {
        // Try OAuth again on the next call; basic auth has nothing to refresh.
        fallenBack = false;
        return;
      }
      await oauth.refresh().catch(async (error: unknown) => {
        await fallBack(error);
      });
    },
  };
}
