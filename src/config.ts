/**
 * The one schema over the environment. Parsed once at boot by the CLI; every module receives the typed
 * `Config` (or the part of it it needs) from the composition root, never `process.env`.
 *
 * Variable names follow the integration runbook (DESIGN.md, "Environment"); `.env.example` documents each.
 * A secret's value never appears in an error message: problems name the variable and what was expected.
 */
import { parseClamavUrl } from './connectors/evidence-stores/clamd.ts';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

/** Variables whose values are secrets: never echoed in errors, and scrubbed from every log line. */
export const SECRET_VARIABLES = [
  'DATABASE_URL',
  'PROJECTX_ENCRYPTION_KEY',
  'SLACK_SIGNING_SECRET',
  'SLACK_BOT_TOKEN',
  'SLACK_CLIENT_SECRET',
  'SLACK_APP_LEVEL_TOKEN',
  'MICROSOFT_APP_PASSWORD',
  'SERVICENOW_OAUTH_CLIENT_SECRET',
  'SERVICENOW_PASSWORD',
  'SERVICENOW_WEBHOOK_SECRET',
  'JIRA_OAUTH_CLIENT_SECRET',
  'JIRA_WEBHOOK_SECRET',
  'JIRA_PAT',
  'ONETRUST_API_TOKEN',
  'SMTP_PASSWORD',
  'GENERIC_WEBHOOK_SECRET',
  'AWS_EXTERNAL_ID',
] as const;

const secretSet: ReadonlySet<string> = new Set(SECRET_VARIABLES);

/** Empty strings count as unset, as they do in `.env` files and most deployment tools. */
const unsetIfEmpty = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(unsetIfEmpty, schema.optional());
/** A variable with a default: empty or unset takes the default. */
const withDefault = <T extends z.ZodType>(schema: T, fallback: z.input<T>) => z.preprocess(unsetIfEmpty, schema.default(fallback as never));

const url = (protocols: readonly string[]) =>
  z.string().superRefine((value, ctx) => {
    if (!URL.canParse(value)) {
      ctx.addIssue({ code: 'custom', message: `must be a URL (${protocols.join(' or ')})` });
    } else if (!protocols.includes(new URL(value).protocol.replace(/:$/, ''))) {
      ctx.addIssue({ code: 'custom', message: `must use ${protocols.join(' or ')}` });
    }
  });

/** A whole number from `min` to `max`; every way to miss says `message`. */
const wholeNumber = (min: number, max: number, message: string) => z.coerce.number({ message }).int({ message }).min(min, { message }).max(max, { message });

const portNumber = () => wholeNumber(0, 65535, 'must be a whole number from 0 to 65535');

const text = optional(z.string().trim().min(1));
/** Secrets are trimmed (file-mounted secrets end in a newline) and must be long enough to be real. */
const secret = optional(z.string().trim().min(8, { message: 'must be at least 8 characters (is it complete?)' }));
/** A Standard Webhooks secret (`whsec_` + base64 of 24 to 64 bytes, as the spec says), or a plain secret of 8+ characters. */
const webhookSecret = optional(
  z
    .string()
    .trim()
    .min(8, { message: 'must be at least 8 characters (is it complete?)' })
    .refine(
      (value) => {
        if (!value.startsWith('whsec_')) return true;
        const encoded = value.slice('whsec_'.length);
        const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) ? Buffer.from(encoded, 'base64').length : 0;
        return bytes >= 24 && bytes <= 64;
      },
      { message: 'a whsec_ secret must be whsec_ followed by the base64 of 24 to 64 random bytes' },
    ),
);

/**
 * `PROJECTX_ENCRYPTION_KEY`: one or more `keyId:base64Key` entries separated by commas, each key 32 bytes
 * (AES-256). The first entry encrypts; every entry can decrypt, which is how rotation works.
 */
const encryptionKeys = optional(
  z.string().transform((value, ctx) => {
    const keys: { id: string; key: Buffer }[] = [];
    for (const entry of value.split(',').map((part) => part.trim()).filter(Boolean)) {
      const separator = entry.indexOf(':');
      const id = separator > 0 ? entry.slice(0, separator) : '';
      const key = Buffer.from(separator > 0 ? entry.slice(separator + 1) : '', 'base64');
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(id) || key.length !== 32) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be comma-separated keyId:base64 entries, each key 32 bytes (e.g. k1:$(openssl rand -base64 32))',
        });
        return z.NEVER;
      }
      keys.push({ id, key });
    }
    if (keys.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'must hold at least one keyId:base64 entry' });
      return z.NEVER;
    }
    return keys;
  }),
);

/**
 * `OUTBOUND_WEBHOOK_ALLOWED_NETWORKS`: IP addresses or CIDR ranges (comma-separated) that outbound webhook
 * deliveries may reach although they are not public unicast (loopback, private, link-local, …). Parsed into
 * normalized CIDRs (`127.0.0.1/32`); only plain dotted-quad IPv4 is accepted (no `127.1` or octal forms).
 */
const networkList = z.string().transform((value, ctx) => {
  const parsed: string[] = [];
  for (const entry of value.split(',').map((part) => part.trim()).filter(Boolean)) {
    const [address = '', prefix, extra] = entry.split('/');
    const bits = ipaddr.IPv4.isValidFourPartDecimal(address) ? 32 : ipaddr.IPv6.isValid(address) ? 128 : 0;
    if (bits === 0 || extra !== undefined || (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits))) {
      ctx.addIssue({ code: 'custom', message: 'must be comma-separated IP addresses or CIDR ranges (e.g. 127.0.0.1/32,10.0.0.0/8,fd00::/8)' });
      return z.NEVER;
    }
    parsed.push(`${ipaddr.parse(address).toString()}/${prefix ?? bits}`);
  }
  return parsed;
});
const networks = optional(networkList);

const schema = z.object({
  NODE_ENV: withDefault(z.enum(['development', 'production', 'test']), 'development'),
  LOG_LEVEL: withDefault(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),

  DATABASE_URL: optional(url(['postgres', 'postgresql'])),
  PROJECTX_DATA_DIR: withDefault(z.string().trim().min(1), '.data'),
  HOST: withDefault(z.string().trim().min(1), '0.0.0.0'),
  PORT: withDefault(portNumber(), 3000),
  PUBLIC_URL: optional(url(['http', 'https'])),
  HTTP_BODY_LIMIT_BYTES: withDefault(
    z.coerce
      .number({ message: 'must be a whole number of bytes' })
      .int({ message: 'must be a whole number of bytes' })
      .min(1024, { message: 'must be at least 1024 bytes' })
      .max(100 * 1024 * 1024, { message: 'must be at most 100 MiB' }),
    1024 * 1024,
  ),
  SHUTDOWN_TIMEOUT_MS: withDefault(
    z.coerce
      .number({ message: 'must be a whole number of milliseconds' })
      .int({ message: 'must be a whole number of milliseconds' })
      .min(1000, { message: 'must be at least 1000 ms' })
      .max(60_000, { message: 'must be at most 60000 ms' }),
    9000,
  ),

  PROJECTX_ENCRYPTION_KEY: encryptionKeys,

  SLACK_SIGNING_SECRET: secret,
  SLACK_BOT_TOKEN: optional(z.string().trim().startsWith('xoxb-', { message: 'must be a bot token (xoxb-…)' })),
  SLACK_CLIENT_ID: text,
  SLACK_CLIENT_SECRET: secret,
  /** Slack team ids (T…) and enterprise ids (E…) that may install and use the app; others need an install link. */
  SLACK_ALLOWED_WORKSPACES: optional(
    z.string().transform((value, ctx) => {
      const ids = value.split(',').map((part) => part.trim()).filter(Boolean);
      if (ids.length > 0 && ids.every((id) => /^[TE][A-Z0-9]{2,31}$/.test(id))) return ids;
      ctx.addIssue({ code: 'custom', message: 'must be comma-separated Slack team ids (T…) or enterprise ids (E…), e.g. T0123ABCD,E0456EFGH' });
      return z.NEVER;
    }),
  ),
  SLACK_APP_LEVEL_TOKEN: optional(z.string().trim().startsWith('xapp-', { message: 'must be an app-level token (xapp-…)' })),
  SLACK_API_URL: optional(url(['http', 'https'])),
  /**
   * A Slack delivery still unprocessed this long after it was recorded is redelivered (its process stopped).
   * At least 20 s: longer than a listener can run (a 2.5 s ack wait, then Slack calls bounded at 10 s).
   */
  SLACK_REDELIVER_AFTER_SECONDS: withDefault(wholeNumber(20, 3600, 'must be a whole number of seconds from 20 to 3600'), 60),

  MICROSOFT_APP_ID: text,
  MICROSOFT_APP_PASSWORD: secret,
  /** How the bot's Entra ID app is set up; unset: SingleTenant (Azure no longer creates multi-tenant bots). */
  MICROSOFT_APP_TYPE: optional(z.enum(['SingleTenant', 'MultiTenant', 'UserAssignedMSI'], { message: 'must be one of SingleTenant, MultiTenant, UserAssignedMSI' })),
  MICROSOFT_APP_TENANT_ID: text,
  // Bot Framework endpoints, for sovereign clouds and tests; unset: the public cloud's (src/bot/teams/adapter.ts).
  BOTFRAMEWORK_OPENID_METADATA_URL: optional(url(['http', 'https'])),
  BOTFRAMEWORK_TOKEN_ISSUER: text,
  BOTFRAMEWORK_LOGIN_URL: optional(url(['https', 'http'])),
  BOTFRAMEWORK_OAUTH_SCOPE: text,
  /** Entra tenant ids whose activities and installs the Teams bot accepts; unset: only MICROSOFT_APP_TENANT_ID's. */
  TEAMS_ALLOWED_TENANTS: optional(
    z.string().transform((value, ctx) => {
      const ids = value.split(',').map((part) => part.trim().toLowerCase()).filter(Boolean);
      if (ids.length === 0 || !ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id))) {
        ctx.addIssue({ code: 'custom', message: 'must be comma-separated Entra tenant ids (GUIDs)' });
        return z.NEVER;
      }
      return ids;
    }),
  ),
  /**
   * Hosts (`host` or `host:port`) evidence files sent in Teams may be downloaded from besides the tenants'
   * SharePoint and OneDrive hosts (src/bot/teams/evidence-upload.ts), over http or https: a private deployment's
   * file host, or a test server.
   */
  TEAMS_FILE_HOSTS: optional(
    z.string().transform((value, ctx) => {
      const hosts = value.split(',').map((part) => part.trim().toLowerCase()).filter(Boolean);
      const valid = (host: string) => {
        const match = /^([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/.exec(host);
        return match !== null && (match[2] === undefined || (Number(match[2]) >= 1 && Number(match[2]) <= 65535));
      };
      if (hosts.length === 0 || !hosts.every(valid)) {
        ctx.addIssue({ code: 'custom', message: 'must be comma-separated hosts with an optional port, no scheme or path (e.g. files.example.com,127.0.0.1:8080)' });
        return z.NEVER;
      }
      return hosts;
    }),
  ),

  SERVICENOW_BASE_URL: optional(url(['http', 'https'])),
  SERVICENOW_OAUTH_CLIENT_ID: text,
  SERVICENOW_OAUTH_CLIENT_SECRET: secret,
  SERVICENOW_USER: text,
  SERVICENOW_PASSWORD: secret,
  SERVICENOW_WEBHOOK_SECRET: webhookSecret,

  /** The Jira site (Cloud: https://<site>.atlassian.net) or the Data Center base URL. */
  JIRA_BASE_URL: optional(url(['http', 'https'])),
  /** `oauth` (OAuth 2.0 3LO, Cloud; the default when the OAuth client is set) or `pat` (a token: see JIRA_PAT). */
  JIRA_AUTH_MODE: optional(z.enum(['oauth', 'pat'], { message: 'must be oauth or pat' })),
  JIRA_OAUTH_CLIENT_ID: text,
  JIRA_OAUTH_CLIENT_SECRET: secret,
  /** With JIRA_USER_EMAIL: a Cloud API token (basic auth); without it: a Data Center personal access token (Bearer). */
  JIRA_PAT: secret,
  JIRA_USER_EMAIL: optional(z.email({ message: 'must be an email address' })),
  /** The projects synced (keys, comma-separated). */
  JIRA_PROJECT_KEYS: optional(
    z.string().transform((value, ctx) => {
      const keys = value.split(',').map((part) => part.trim().toUpperCase()).filter(Boolean);
      if (keys.length > 0 && keys.every((key) => /^[A-Z][A-Z0-9_]{0,254}$/.test(key))) return [...new Set(keys)];
      ctx.addIssue({ code: 'custom', message: 'must be comma-separated Jira project keys (e.g. SEC,OPS)' });
      return z.NEVER;
    }),
  ),
  /** More JQL ANDed to the projects' scope (e.g. `labels = compliance`). */
  JIRA_JQL_FILTER: text,
  /** Secret of the Jira admin webhook (X-Hub-Signature, HMAC-SHA256); unset: the webhook endpoint answers 404. */
  JIRA_WEBHOOK_SECRET: secret,
  /** Nightly reconciliation of Jira issues (deletions, what the syncs missed); default true. */
  ENABLE_JIRA_DELTA_RECON: optional(z.enum(['true', 'false'], { message: 'must be true or false' })).transform((value) => value !== 'false'),
  /** Seconds between incremental syncs of Jira issues (60 to 86400; default 300). */
  JIRA_SYNC_INTERVAL_SECONDS: withDefault(wholeNumber(60, 86_400, 'must be a whole number of seconds from 60 to 86400'), 300),
  /** Atlassian's OAuth host and API gateway (defaults https://auth.atlassian.com, https://api.atlassian.com). */
  ATLASSIAN_AUTH_URL: withDefault(url(['http', 'https']), 'https://auth.atlassian.com'),
  ATLASSIAN_API_URL: withDefault(url(['http', 'https']), 'https://api.atlassian.com'),

  ONETRUST_BASE_URL: optional(url(['http', 'https'])),
  ONETRUST_API_TOKEN: secret,
  ONETRUST_REGION: text,
  ONETRUST_TIMEOUT_SECONDS: optional(wholeNumber(1, 300, 'must be a number of seconds from 1 to 300')),

  SMTP_HOST: text,
  SMTP_PORT: optional(portNumber()),
  SMTP_USERNAME: text,
  SMTP_PASSWORD: secret,
  SMTP_FROM_ADDRESS: optional(z.email({ message: 'must be an email address' })),
  /** Where a channel notification goes by email when Slack cannot deliver it for good; unset: nowhere (logged). */
  EMAIL_FALLBACK_ADDRESS: optional(z.email({ message: 'must be an email address' })),
  /** The inbound SMTP listener (web role) for mail relayed by the organisation's MTA; unset: no listener. */
  SMTP_INBOUND_PORT: optional(portNumber()),
  SMTP_INBOUND_HOST: withDefault(z.string().trim().min(1), '127.0.0.1'),
  // Who may connect to the SMTP listener (the MTA): it trusts the From of what it is given. Default loopback.
  SMTP_INBOUND_ALLOWED_NETWORKS: withDefault(networkList, ['127.0.0.0/8', '::1/128'] as never),
  GENERIC_WEBHOOK_SECRET: webhookSecret,
  /** Non-public networks outbound webhook subscriptions may deliver to (tests: 127.0.0.1/32); unset: none. */
  OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: networks,

  /** Local evidence store directory (default `<PROJECTX_DATA_DIR>/evidence`). */
  EVIDENCE_LOCAL_DIR: text,
  /** The largest evidence file accepted from any source, in bytes (default 25 MB). */
  EVIDENCE_MAX_BYTES: withDefault(wholeNumber(1, 5 * 1024 ** 3, 'must be a whole number of bytes from 1 to 5 GiB'), 25 * 1024 * 1024),
  /** clamd for the virus scan (`tcp://host:port`, or a Unix socket path); unset: files are recorded unscanned. */
  CLAMAV_URL: optional(z.string().trim().superRefine((value, ctx) => {
    try {
      parseClamavUrl(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(/^CLAMAV_URL "[^"]*" /, '') });
    }
  })),
  /** true: without a scanner (CLAMAV_URL unset) files wait in quarantine instead of being recorded unscanned. */
  EVIDENCE_SCAN_REQUIRED: optional(z.enum(['true', 'false'], { message: 'must be true or false' })).transform((value) => value === 'true'),
  /** Where evidence files are stored: `local` (default), `s3`; `sharepoint` and `gdrive` are not built yet. */
  EVIDENCE_STORE: withDefault(z.enum(['local', 's3', 'sharepoint', 'gdrive'], { message: 'must be local, s3, sharepoint or gdrive' }), 'local'),
  EVIDENCE_S3_BUCKET: text,
  AWS_REGION: text,
  /** An S3-compatible server (path-style addressing), e.g. http://127.0.0.1:7480; unset: AWS. */
  EVIDENCE_S3_ENDPOINT: optional(z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' })),
  /** Object Lock retention of each evidence object, in days, when the bucket has Object Lock. */
  EVIDENCE_RETENTION_DAYS: optional(wholeNumber(1, 36_500, 'must be a whole number of days from 1 to 36500')),
  EVIDENCE_S3_OBJECT_LOCK_MODE: withDefault(z.enum(['COMPLIANCE', 'GOVERNANCE'], { message: 'must be COMPLIANCE or GOVERNANCE' }), 'COMPLIANCE'),
  /** SSE-KMS key (id, alias or ARN) for evidence objects; unset: the bucket's default encryption. */
  EVIDENCE_S3_KMS_KEY_ID: text,
  // An IAM role (the account may be empty for S3-compatible servers' STS).
  AWS_ROLE_ARN: optional(z.string().regex(/^arn:aws[a-z-]*:iam::(\d{12})?:role\/.+$/, { message: 'must be an IAM role ARN' })),
  AWS_EXTERNAL_ID: secret,
  SHAREPOINT_SITE_ID: text,
  SHAREPOINT_LIBRARY_ID: text,
  EVIDENCE_GOOGLE_DRIVE_FOLDER_ID: text,
});

export type Config = z.output<typeof schema>;

/** Every variable the service reads (for documentation checks: `.env.example` must list each). */
export const CONFIG_VARIABLES = Object.keys(schema.shape) as (keyof Config)[];
export type EncryptionKey = NonNullable<Config['PROJECTX_ENCRYPTION_KEY']>[number];

export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: string[] };

/**
 * Parses the environment into a `Config`, or lists every problem (one line per bad variable).
 *
 * @example
 * const result = loadConfig(process.env);
 * if (!result.ok) { console.error(result.problems.join('\n')); process.exit(1); }
 */
export function loadConfig(env: Record<string, string | undefined>): ConfigResult {
  const parsed = schema.safeParse(env);
  if (parsed.success) {
    const problems = inconsistencies(parsed.data);
    return problems.length === 0 ? { ok: true, config: parsed.data } : { ok: false, problems };
  }
  const problems = parsed.error.issues.map((issue) => {
    const variable = String(issue.path[0] ?? '(environment)');
    const raw = env[variable];
    const shown = secretSet.has(variable) || raw === undefined ? '' : ` (got ${JSON.stringify(truncate(raw))})`;
    return `${variable}: ${issue.message}${shown}`;
  });
  return { ok: false, problems: [...new Set(problems)] };
}

/** Variables that are each valid but do not go together. */
function inconsistencies(config: Config): string[] {
  const problems: string[] = [];
  const type = config.MICROSOFT_APP_TYPE;
  if (type === 'UserAssignedMSI' && config.MICROSOFT_APP_PASSWORD !== undefined) problems.push('MICROSOFT_APP_PASSWORD: must not be set with MICROSOFT_APP_TYPE=UserAssignedMSI (the managed identity signs the bot in)');
  if ((type === 'SingleTenant' || type === 'UserAssignedMSI') && config.MICROSOFT_APP_ID !== undefined && config.MICROSOFT_APP_TENANT_ID === undefined) problems.push(`MICROSOFT_APP_TENANT_ID: is required with MICROSOFT_APP_TYPE=${type} (the bot's Entra tenant)`);
  // Jira's mode names the credential it uses: the other one set alone would leave it unable to sign in.
  const jiraOAuth = config.JIRA_OAUTH_CLIENT_ID !== undefined && config.JIRA_OAUTH_CLIENT_SECRET !== undefined;
  if (config.JIRA_AUTH_MODE === 'oauth' && !jiraOAuth) problems.push('JIRA_AUTH_MODE: oauth needs JIRA_OAUTH_CLIENT_ID and JIRA_OAUTH_CLIENT_SECRET');
  if (config.JIRA_AUTH_MODE === 'pat' && config.JIRA_PAT === undefined) problems.push('JIRA_AUTH_MODE: pat needs JIRA_PAT (with JIRA_USER_EMAIL on Cloud)');
  const oauthInUse = jiraOAuth && config.JIRA_AUTH_MODE !== 'pat';
  if (oauthInUse && config.JIRA_BASE_URL !== undefined && config.PUBLIC_URL === undefined) problems.push('PUBLIC_URL: is required with Jira OAuth (the consent comes back to <PUBLIC_URL>/oauth/callback/jira)');
  if (config.JIRA_USER_EMAIL !== undefined && config.JIRA_PAT === undefined) problems.push('JIRA_USER_EMAIL: is only used with JIRA_PAT (a Cloud API token); set JIRA_PAT too');
  // The evidence store: a store named must be fully described (and built).
  if (config.EVIDENCE_STORE === 's3' && config.EVIDENCE_S3_BUCKET === undefined) problems.push('EVIDENCE_S3_BUCKET: is required with EVIDENCE_STORE=s3');
  if (config.EVIDENCE_STORE === 'sharepoint' || config.EVIDENCE_STORE === 'gdrive') problems.push(`EVIDENCE_STORE: ${config.EVIDENCE_STORE} is not built in this version (local or s3)`);
  if (config.AWS_EXTERNAL_ID !== undefined && config.AWS_ROLE_ARN === undefined) problems.push('AWS_EXTERNAL_ID: is only used with AWS_ROLE_ARN (the role it is presented to); set AWS_ROLE_ARN too');
  return problems;
}

function truncate(value: string): string {
  return value.length > 60 ? `${value.slice(0, 57)}...` : value;
}

/**
 * The values of every secret variable that is set, for the log scrubber: whole values (as given and trimmed),
 * plus the parts that can surface on their own (a database URL's password, each encryption key).
 */
export function secretValues(env: Record<string, string | undefined>): string[] {
  const values: string[] = [];
  for (const name of SECRET_VARIABLES) {
    const raw = env[name];
    if (typeof raw !== 'string') continue;
    const value = raw.trim();
    values.push(raw, value);
    if (name === 'DATABASE_URL' && URL.canParse(value)) {
      const password = decodeURIComponent(new URL(value).password);
      if (password) values.push(password);
    }
    if (name === 'PROJECTX_ENCRYPTION_KEY') {
      for (const entry of value.split(',')) values.push(entry.slice(entry.indexOf(':') + 1).trim());
    }
  }
  // Secret variables must be 8+ characters (the schema says so); a database password may be shorter, but
  // scrubbing 1-3 character strings would mangle every log line.
  return [...new Set(values.filter((value) => value.length >= 4))];
}
