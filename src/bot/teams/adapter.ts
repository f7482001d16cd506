/**
 * The one place botbuilder is used (the Bot Framework SDK is out of support since 31 December 2025; moving to
 * the Microsoft 365 Agents SDK, `@microsoft/agents-hosting`, should touch this seam only): the `CloudAdapter`
 * that authenticates inbound activities for real (../shared/notes/teams.md §1) and sends (§2, §3).
 *
 * Inbound: the channel's JWT must come from the configured issuer, be signed (RS256/384/512) by a key of the
 * JWKS the OpenID metadata names, that key's endorsements must include the activity's channel (`msteams`), the
 * audience must be our app id and the `serviceurl` claim the activity's. botbuilder answers some forgeries with
 * a 500 (a wrong key under a known `kid`, HS256, `alg: none`: jsonwebtoken's errors are not its
 * `AuthenticationError`), so `authenticate` turns every failure of the token into a refusal with a reason, and
 * only a failure of our own logic stays an error.
 *
 * Configuration, all-or-nothing (notes §3): once any endpoint is overridden botbuilder fills in no default for
 * the others, so every one is always set here, from BOTFRAMEWORK_* or the public cloud's values.
 *
 * Outbound: with an app password, the token for the Bot Connector comes from our own MSAL
 * `ConfidentialClientApplication` (client credentials, authority `BOTFRAMEWORK_LOGIN_URL/<tenant>`, scope
 * `BOTFRAMEWORK_OAUTH_SCOPE/.default`) through botframework-connector's `MsalServiceClientCredentialsFactory`.
 * botbuilder's default factory cannot reach any authority but Microsoft's: MSAL asks
 * `login.microsoftonline.com` for instance discovery unless the authority's host is in `knownAuthorities`, so that
 * is set whenever the login URL is not the public cloud's (a sovereign cloud, or a test's fake Entra ID over https,
 * whose certificate the test passes as `outboundCa`; in production the system CAs or NODE_EXTRA_CA_CERTS apply).
 */
import { ConfidentialClientApplication, type Configuration as MsalConfiguration } from '@azure/msal-node';
import { type Activity, CloudAdapter, ConfigurationBotFrameworkAuthentication, type ConversationReference, TeamsInfo, TurnContext } from 'botbuilder';
import { MsalServiceClientCredentialsFactory } from 'botframework-connector';
import type { Config } from '../../config.ts';

/** Why an inbound activity was refused: the label of `teams_auth_failures_total`, and the error code's suffix. */
export const TEAMS_AUTH_FAILURES = [
  'missing_token',
  'invalid_token',
  'invalid_signature',
  'invalid_algorithm',
  'unsigned_token',
  'expired_token',
  'token_not_yet_valid',
  'wrong_issuer',
  'wrong_audience',
  'unknown_signing_key',
  'not_endorsed',
  'service_url_mismatch',
  'skill_token',
] as const;
export type TeamsAuthFailure = (typeof TEAMS_AUTH_FAILURES)[number];

export const PUBLIC_CLOUD = {
  openIdMetadataUrl: 'https://login.botframework.com/v1/.well-known/openidconfiguration',
  tokenIssuer: 'https://api.botframework.com',
  loginUrl: 'https://login.microsoftonline.com',
  oauthScope: 'https://api.botframework.com',
  emulatorOpenIdMetadataUrl: 'https://login.microsoftonline.com/botframework.com/v2.0/.well-known/openid-configuration',
  oauthUrl: 'https://api.botframework.com',
  callerId: 'urn:botframework:azure',
} as const;

export interface TeamsAuthSettings {
  appId: string;
  appPassword: string | undefined;
  appType: 'SingleTenant' | 'MultiTenant' | 'UserAssignedMSI';
  tenantId: string | undefined;
  openIdMetadataUrl: string;
  tokenIssuer: string;
  /** The authority base; the tenant (MICROSOFT_APP_TENANT_ID, or `botframework.com` for MultiTenant) is appended. */
  loginUrl: string;
  oauthScope: string;
}

/** The settings from the configuration (the public cloud's endpoints where unset); undefined without an app id. */
export function teamsAuthSettings(config: Config): TeamsAuthSettings | undefined {
  if (!config.MICROSOFT_APP_ID) return undefined;
  return {
    appId: config.MICROSOFT_APP_ID,
    appPassword: config.MICROSOFT_APP_PASSWORD,
    appType: config.MICROSOFT_APP_TYPE ?? 'SingleTenant',
    tenantId: config.MICROSOFT_APP_TENANT_ID,
    openIdMetadataUrl: config.BOTFRAMEWORK_OPENID_METADATA_URL ?? PUBLIC_CLOUD.openIdMetadataUrl,
    tokenIssuer: config.BOTFRAMEWORK_TOKEN_ISSUER ?? PUBLIC_CLOUD.tokenIssuer,
    loginUrl: (config.BOTFRAMEWORK_LOGIN_URL ?? PUBLIC_CLOUD.loginUrl).replace(/\/+$/, ''),
    oauthScope: config.BOTFRAMEWORK_OAUTH_SCOPE ?? PUBLIC_CLOUD.oauthScope,
  };
}

/** Where a proactive message goes: what `TurnContext.getConversationReference(activity)` gave when it was stored. */
export type TeamsConversationReference = Partial<ConversationReference>;

/** A send that failed before reaching Teams because Entra ID refused or could not give the bot a token. */
export class TeamsOutboundError extends Error {
  readonly code: 'teams_token_refused';
  constructor(code: TeamsOutboundError['code'], message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'TeamsOutboundError';
    this.code = code;
  }
}

/**
 * A send, update or roster lookup the Bot Connector refused or never answered. `status` is Teams' HTTP status
 * (undefined when no answer came: the request may or may not have reached Teams); `code` is Teams' error code
 * (`MessageWritesBlocked` for a blocked or uninstalled bot), `retryAfterSeconds` its `Retry-After`.
 */
export class TeamsSendError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, details: { status: number | undefined; code: string | undefined; retryAfterSeconds: number | undefined }, options: { cause: unknown }) {
    super(message, options);
    this.name = 'TeamsSendError';
    this.status = details.status;
    this.code = details.code;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}

/** What the bot sends: text (notifications, screen readers) and Adaptive Card attachments. */
export interface TeamsOutgoing {
  text: string;
  attachments: { contentType: string; content: unknown }[];
}

/** A roster entry as `TeamsInfo.getMember` gives it (Teams' REST payload says `objectId`, the SDK's type `aadObjectId`). */
export interface TeamsMemberInfo {
  id: string;
  objectId: string | undefined;
  email: string | undefined;
  userPrincipalName: string | undefined;
  userRole: string | undefined;
  tenantId: string | undefined;
}

export interface TeamsAdapterOptions {
  /**
   * PEM of the CAs to trust for the Entra ID authority (MSAL's own agent): the module passes the public roots
   * plus NODE_EXTRA_CA_CERTS' file when that is set (a sovereign cloud's or a test's CA); unset: Node's defaults.
   */
  outboundCa?: string | string[];
}

export interface TeamsAdapter {
  /**
   * Authenticates an activity's `Authorization` header with botbuilder and, once it is, runs `logic` on the
   * activity in its turn. Resolves with what `logic` returned, or a refusal of the token; rejects only when
   * `logic` fails.
   */
  process<T>(authorization: string, activity: Record<string, unknown>, logic: (activity: Record<string, unknown>) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; reason: TeamsAuthFailure }>;
  /**
   * Runs `logic` in a turn of a stored conversation, outside any inbound activity (a proactive message), as our
   * app. Rejects when `logic` fails (a `TeamsOutboundError` when no token could be had).
   */
  continueConversation(reference: TeamsConversationReference, logic: (turn: TurnContext) => Promise<void>): Promise<void>;
  /**
   * Posts a message to a stored conversation (proactively, `continueConversationAsync`); resolves with the
   * activity id Teams gave it. Exactly one request: the SDK's own retries are removed (a lost response must
   * not become a second post; our jobs retry). Rejects with `TeamsSendError` or `TeamsOutboundError`.
   */
  send(reference: TeamsConversationReference, message: TeamsOutgoing): Promise<{ id: string }>;
  /** Replaces a message the bot posted (`PUT …/activities/{id}`); one request, failures as for `send`. */
  update(reference: TeamsConversationReference, activityId: string, message: TeamsOutgoing): Promise<void>;
  /** A member of the conversation's roster (`GET …/members/{id}`), or undefined when Teams does not know them. */
  member(reference: TeamsConversationReference, memberId: string): Promise<TeamsMemberInfo | undefined>;
}

/** Where a reply to `activity` goes, and what a proactive message later continues. */
export function referenceOf(activity: Record<string, unknown>): TeamsConversationReference {
  return TurnContext.getConversationReference(activity);
}

/** The MSAL client the outbound token comes from, or undefined where botbuilder's own factory applies (no password, MSI). */
function outboundClient(settings: TeamsAuthSettings, tenant: string, options: TeamsAdapterOptions): ConfidentialClientApplication | undefined {
  if (!settings.appPassword || settings.appType === 'UserAssignedMSI') return undefined;
  const config: MsalConfiguration = {
    auth: {
      clientId: settings.appId,
      clientSecret: settings.appPassword,
      authority: `${settings.loginUrl}/${tenant}`,
      ...(settings.loginUrl === PUBLIC_CLOUD.loginUrl ? {} : { knownAuthorities: [new URL(settings.loginUrl).host] }),
    },
    ...(options.outboundCa ? { system: { customAgentOptions: { ca: options.outboundCa } } } : {}),
  };
  return new ConfidentialClientApplication(config);
}

/**
 * The same msal-node 2.16.3 class, typed from its CommonJS declarations (which botframework-connector, a CommonJS
 * package, sees) while we import its ES module declarations: only the private members' declarations differ.
 */
type MsalFactoryClient = ConstructorParameters<typeof MsalServiceClientCredentialsFactory>[1];

/** MSAL's errors (`ServerError`, `ClientAuthError`…) carry an `errorCode`: the token was not had. */
function outboundFailure(error: unknown): unknown {
  const errorCode = error instanceof Error ? (error as { errorCode?: unknown }).errorCode : undefined;
  if (typeof errorCode !== 'string' || !errorCode) return error;
  return new TeamsOutboundError('teams_token_refused', `Entra ID gave the bot no token for the Bot Connector (${errorCode}): check MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD, MICROSOFT_APP_TENANT_ID and BOTFRAMEWORK_LOGIN_URL`, { cause: error });
}

/** Runs `logic`, keeping its failure apart from botbuilder's (and from an `onTurnError` that would swallow it). */
function guarded(logic: (turn: TurnContext) => Promise<void>) {
  const state: { failure?: { error: unknown } } = {};
  const run = async (turn: TurnContext) => {
    try {
      await logic(turn);
    } catch (error) {
      state.failure = { error: outboundFailure(error) };
    }
  };
  return { run, state };
}

export function createTeamsAdapter(settings: TeamsAuthSettings, options: TeamsAdapterOptions = {}): TeamsAdapter {
  const tenant = settings.appType === 'MultiTenant' ? 'botframework.com' : (settings.tenantId ?? 'botframework.com');
  const client = outboundClient(settings, tenant, options);
  const auth = new ConfigurationBotFrameworkAuthentication({
    MicrosoftAppId: settings.appId,
    ...(settings.appPassword ? { MicrosoftAppPassword: settings.appPassword } : {}),
    MicrosoftAppType: settings.appType,
    ...(settings.tenantId ? { MicrosoftAppTenantId: settings.tenantId } : {}),
    ToBotFromChannelOpenIdMetadataUrl: settings.openIdMetadataUrl,
    ToBotFromChannelTokenIssuer: settings.tokenIssuer,
    ToChannelFromBotLoginUrl: `${settings.loginUrl}/${tenant}`,
    ToChannelFromBotOAuthScope: settings.oauthScope,
    ToBotFromEmulatorOpenIdMetadataUrl: PUBLIC_CLOUD.emulatorOpenIdMetadataUrl,
    OAuthUrl: PUBLIC_CLOUD.oauthUrl,
    CallerId: PUBLIC_CLOUD.callerId,
  }, client ? new MsalServiceClientCredentialsFactory(settings.appId, client as unknown as MsalFactoryClient) : undefined);
  const adapter = new ProjectxCloudAdapter(auth);
  const continueConversation: TeamsAdapter['continueConversation'] = async (reference, logic) => {
    const { run, state } = guarded(logic);
    await adapter.continueConversationAsync(settings.appId, reference, run);
    if (state.failure) throw state.failure.error;
  };
  return {
    async process<T>(authorization: string, activity: Record<string, unknown>, logic: (activity: Record<string, unknown>) => Promise<T>) {
      if (!authorization.trim()) return { ok: false as const, reason: 'missing_token' as const };
      // Our logic's failure must not be mistaken for a refusal of the token: it is carried out separately.
      const result: { value?: T } = {};
      const { run, state } = guarded(async (turn) => {
        result.value = await logic(turn.activity as unknown as Record<string, unknown>);
      });
      try {
        await adapter.run(authorization, activity as unknown as Activity, run);
        if (state.failure) throw state.failure.error;
        return { ok: true as const, value: result.value as T };
      } catch (error) {
        if (state.failure) throw state.failure.error;
        const reason = authFailureReason(error);
        if (reason) return { ok: false as const, reason };
        throw error;
      }
    },
    continueConversation,
    async send(reference, message) {
      let id: string | undefined;
      await continueConversation(reference, async (turn) => {
        withoutRetries(turn);
        const sent = await turn.sendActivity({ type: 'message', text: message.text, attachments: message.attachments }).catch(sendFailure);
        id = sent?.id;
      });
      if (!id) throw new TeamsSendError('Teams accepted the message but gave no activity id', { status: undefined, code: 'no_activity_id', retryAfterSeconds: undefined }, { cause: undefined });
      return { id };
    },
    async update(reference, activityId, message) {
      await continueConversation(reference, async (turn) => {
        withoutRetries(turn);
        await turn.updateActivity({ type: 'message', id: activityId, text: message.text, attachments: message.attachments }).catch(sendFailure);
      });
    },
    async member(reference, memberId) {
      let found: TeamsMemberInfo | undefined;
      await continueConversation(reference, async (turn) => {
        withoutRetries(turn);
        const member = await TeamsInfo.getMember(turn, memberId).catch((error: unknown) => {
          if ((error as { statusCode?: unknown }).statusCode === 404) return undefined;
          return sendFailure(error);
        });
        if (!member) return;
        const raw = member as unknown as Record<string, unknown>;
        const text = (key: string) => {
          const value = raw[key];
          return typeof value === 'string' && value ? value : undefined;
        };
        found = { id: member.id, objectId: text('aadObjectId') ?? text('objectId'), email: text('email'), userPrincipalName: text('userPrincipalName'), userRole: text('userRole'), tenantId: text('tenantId') };
      });
      return found;
    },
  };
}

/**
 * Removes the retry phase from the turn's Bot Connector client: its default policy re-sends on a 5xx, on a
 * network error and on a 429 with Retry-After, so a lost response would become a second post. Our jobs retry,
 * knowing what was posted.
 */
function withoutRetries(turn: TurnContext): void {
  const connector = turn.turnState.get<{ client?: { pipeline?: { removePolicy(options: { phase: 'Retry' }): unknown } } } | undefined>(turn.adapter.ConnectorClientKey);
  if (!connector?.client?.pipeline) throw new Error('the turn has no Bot Connector client whose retries can be turned off');
  connector.client.pipeline.removePolicy({ phase: 'Retry' });
}

/** The Bot Connector's refusal (a RestError with a status) or a request that got no answer, as a TeamsSendError. */
function sendFailure(error: unknown): never {
  if (error instanceof TeamsSendError || error instanceof TeamsOutboundError) throw error;
  const errorCode = error instanceof Error ? (error as { errorCode?: unknown }).errorCode : undefined;
  if (typeof errorCode === 'string' && errorCode) throw outboundFailure(error);
  const status = typeof (error as { statusCode?: unknown })?.statusCode === 'number' ? (error as { statusCode: number }).statusCode : undefined;
  const response = (error as { response?: { headers?: { get?(name: string): string | undefined }; bodyAsText?: string } })?.response;
  const retryAfter = response?.headers?.get?.('retry-after');
  let code: string | undefined;
  try {
    const body = JSON.parse(response?.bodyAsText ?? '') as { error?: { code?: unknown } };
    code = typeof body.error?.code === 'string' ? body.error.code : undefined;
  } catch {
    code = undefined;
  }
  const seconds = retryAfter === undefined ? undefined : /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : Math.max(0, Math.ceil((Date.parse(retryAfter) - Date.now()) / 1000));
  const message = status === undefined ? `the Bot Connector did not answer (${error instanceof Error ? error.message : 'no response'})` : `the Bot Connector answered HTTP ${status}${code ? ` ${code}` : ''}`;
  throw new TeamsSendError(message, { status, code, retryAfterSeconds: seconds !== undefined && Number.isFinite(seconds) ? seconds : undefined }, { cause: error });
}

/**
 * `CloudAdapter.process` wants a Node/Express response and answers errors itself (a 500 for some forgeries, the
 * error printed to the console); its protected `processActivity` is the same authentication and turn without
 * the HTTP part, so our Hono route keeps the answer.
 */
class ProjectxCloudAdapter extends CloudAdapter {
  run(authorization: string, activity: Activity, logic: (turn: TurnContext) => Promise<void>) {
    return this.processActivity(authorization, activity, logic);
  }
}

/**
 * The reason a token was refused, from botbuilder's `AuthenticationError` (its messages, notes §1) or
 * jsonwebtoken's errors (which botbuilder does not wrap); undefined for anything else.
 */
export function authFailureReason(error: unknown): TeamsAuthFailure | undefined {
  if (!(error instanceof Error)) return undefined;
  const message = error.message;
  if (error.name === 'TokenExpiredError' || /expired/i.test(message)) return 'expired_token';
  if (error.name === 'NotBeforeError') return 'token_not_yet_valid';
  if (error.name === 'JsonWebTokenError') {
    if (/invalid signature/.test(message)) return 'invalid_signature';
    if (/invalid algorithm/.test(message)) return 'invalid_algorithm';
    if (/signature is required/.test(message)) return 'unsigned_token';
    return 'invalid_token';
  }
  const isAuthenticationError = error.name === 'AuthenticationError' || (error as { statusCode?: unknown }).statusCode === 401;
  if (!isAuthenticationError) return undefined;
  if (/Unauthorized Access/i.test(message)) return 'missing_token';
  if (/Invalid AppId/i.test(message)) return 'wrong_audience';
  if (/ServiceUrl/i.test(message)) return 'service_url_mismatch';
  if (/endorsement/i.test(message)) return 'not_endorsed';
  if (/Signing Key could not be retrieved/i.test(message)) return 'unknown_signing_key';
  if (/SkillValidation/i.test(message)) return 'skill_token';
  if (/No valid identity|issuer/i.test(message)) return 'wrong_issuer';
  return 'invalid_token';
}
