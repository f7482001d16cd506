import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { CONFIG_VARIABLES, SECRET_VARIABLES, loadConfig, secretValues } from '../src/config.ts';
import { NOT_BUILT, describeIntegrations } from '../src/connectors/catalog.ts';
import { modules } from '../src/modules.ts';

function problemsFor(env: Record<string, string>): string[] {
  const result = loadConfig(env);
  if (result.ok) throw new Error('expected configuration problems');
  return result.problems;
}

describe('loadConfig', () => {
  it('accepts an empty environment with working defaults', () => {
    const result = loadConfig({});
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.PORT).toBe(3000);
    expect(result.config.PROJECTX_DATA_DIR).toBe('.data');
    expect(result.config.HTTP_BODY_LIMIT_BYTES).toBe(1024 * 1024);
    expect(result.config.DATABASE_URL).toBeUndefined();
  });

  it('treats empty strings as unset, so .env.example as shipped (every value empty) gives the defaults', () => {
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
    const env = Object.fromEntries([...example.matchAll(/^([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((match) => [match[1]!, match[2]!]));
    expect(Object.keys(env).length).toBe(CONFIG_VARIABLES.length);
    const result = loadConfig(env);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config).toMatchObject({ PORT: 3000, HOST: '0.0.0.0', LOG_LEVEL: 'info', HTTP_BODY_LIMIT_BYTES: 1048576, SHUTDOWN_TIMEOUT_MS: 9000, PROJECTX_DATA_DIR: '.data' });
    expect(result.config.DATABASE_URL).toBeUndefined();
  });

  it('trims secrets (a file-mounted secret ends in a newline) and refuses ones too short to be real', () => {
    const trimmed = loadConfig({ SLACK_SIGNING_SECRET: 'abcdef0123456789\n' });
    expect(trimmed.ok && trimmed.config.SLACK_SIGNING_SECRET).toBe('abcdef0123456789');
    const short = loadConfig({ SLACK_SIGNING_SECRET: 'abc' });
    expect(short.ok ? [] : short.problems).toEqual(['SLACK_SIGNING_SECRET: must be at least 8 characters (is it complete?)']);
  });

  it.each([
    ['PORT', 'abc', /^PORT: must be a whole number from 0 to 65535 \(got "abc"\)$/],
    ['PORT', '70000', /^PORT: must be a whole number from 0 to 65535/],
    ['PORT', '80.5', /^PORT: must be a whole number/],
    ['PUBLIC_URL', 'not a url', /^PUBLIC_URL: must be a URL \(http or https\) \(got "not a url"\)$/],
    ['PUBLIC_URL', 'ftp://example.test', /^PUBLIC_URL: must use http or https/],
    ['SERVICENOW_BASE_URL', 'example.service-now.com', /^SERVICENOW_BASE_URL: must be a URL/],
    ['HTTP_BODY_LIMIT_BYTES', '10', /^HTTP_BODY_LIMIT_BYTES: must be at least 1024 bytes/],
    ['LOG_LEVEL', 'loud', /^LOG_LEVEL: /],
    ['JIRA_AUTH_MODE', 'magic', /^JIRA_AUTH_MODE: must be oauth or pat/],
    ['JIRA_PROJECT_KEYS', 'sec ops,', /^JIRA_PROJECT_KEYS: must be comma-separated Jira project keys/],
    ['JIRA_SYNC_INTERVAL_SECONDS', '30', /^JIRA_SYNC_INTERVAL_SECONDS: must be a whole number of seconds from 60 to 86400/],
    ['JIRA_USER_EMAIL', 'nobody', /^JIRA_USER_EMAIL: must be an email address/],
    ['ONETRUST_TIMEOUT_SECONDS', '0', /^ONETRUST_TIMEOUT_SECONDS: must be a number of seconds/],
    ['AWS_ROLE_ARN', 'role/foo', /^AWS_ROLE_ARN: must be an IAM role ARN/],
  ])('names %s when it is %j', (variable, value, message) => {
    const problems = problemsFor({ [variable]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
  });

  it.each([
    ['DATABASE_URL', 'postgres//user:hunter2-secret@db/x', /^DATABASE_URL: must be a URL \(postgres or postgresql\)$/],
    ['DATABASE_URL', 'mysql://user:hunter2-secret@db/x', /^DATABASE_URL: must use postgres or postgresql$/],
    ['SLACK_BOT_TOKEN', 'xoxp-hunter2-secret', /^SLACK_BOT_TOKEN: must be a bot token \(xoxb-…\)$/],
    ['SLACK_APP_LEVEL_TOKEN', 'xoxb-hunter2-secret', /^SLACK_APP_LEVEL_TOKEN: must be an app-level token/],
    ['PROJECTX_ENCRYPTION_KEY', 'hunter2-secret', /^PROJECTX_ENCRYPTION_KEY: must be comma-separated keyId:base64 entries/],
    ['PROJECTX_ENCRYPTION_KEY', 'k1:aHVudGVyMi1zZWNyZXQ=', /^PROJECTX_ENCRYPTION_KEY: must be comma-separated/],
    // Decodes to an empty (or tiny) HMAC key, which anyone could sign with.
    ['GENERIC_WEBHOOK_SECRET', 'whsec_hunter2!!', /^GENERIC_WEBHOOK_SECRET: a whsec_ secret must be whsec_ followed by the base64 of 24 to 64 random bytes$/],
    ['GENERIC_WEBHOOK_SECRET', 'whsec_aHVudGVyMi1zZWNyZXQ=', /^GENERIC_WEBHOOK_SECRET: a whsec_ secret must be/],
  ])('names secret %s without echoing its value', (variable, value, message) => {
    const problems = problemsFor({ [variable]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
    expect(problems.join('\n')).not.toContain('hunter2');
    expect(problems.join('\n')).not.toContain(value);
  });

  it('lists every bad variable at once', () => {
    const problems = problemsFor({ PORT: 'abc', PUBLIC_URL: 'nope', LOG_LEVEL: 'loud' });
    expect(problems.map((problem) => problem.split(':')[0]).sort()).toEqual(['LOG_LEVEL', 'PORT', 'PUBLIC_URL']);
  });

  it('refuses Teams settings that do not go together: a single-tenant or managed-identity bot without its tenant, a managed identity with a password', () => {
    const app = '00000000-0000-4000-8000-0000000000aa';
    const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
    expect(loadConfig({ MICROSOFT_APP_ID: app, MICROSOFT_APP_PASSWORD: 'app-password-1', MICROSOFT_APP_TYPE: 'SingleTenant' })).toEqual({ ok: false, problems: ["MICROSOFT_APP_TENANT_ID: is required with MICROSOFT_APP_TYPE=SingleTenant (the bot's Entra tenant)"] });
    expect(loadConfig({ MICROSOFT_APP_ID: app, MICROSOFT_APP_PASSWORD: 'app-password-1', MICROSOFT_APP_TYPE: 'UserAssignedMSI', MICROSOFT_APP_TENANT_ID: tenant })).toEqual({ ok: false, problems: ['MICROSOFT_APP_PASSWORD: must not be set with MICROSOFT_APP_TYPE=UserAssignedMSI (the managed identity signs the bot in)'] });
    expect(loadConfig({ MICROSOFT_APP_ID: app, MICROSOFT_APP_PASSWORD: 'app-password-1', MICROSOFT_APP_TYPE: 'MultiTenant' }).ok).toBe(true);
    expect(loadConfig({ MICROSOFT_APP_ID: app, MICROSOFT_APP_TYPE: 'UserAssignedMSI', MICROSOFT_APP_TENANT_ID: tenant }).ok).toBe(true);
  });

  it('refuses Jira settings that do not go together: a mode without its credential, OAuth without PUBLIC_URL, an email without a token', () => {
    const jira = { JIRA_BASE_URL: 'https://acme.atlassian.net', JIRA_PROJECT_KEYS: 'SEC' };
    expect(loadConfig({ ...jira, JIRA_AUTH_MODE: 'oauth', JIRA_PAT: 'jira-api-token', JIRA_USER_EMAIL: 'bot@acme.test' })).toEqual({ ok: false, problems: ['JIRA_AUTH_MODE: oauth needs JIRA_OAUTH_CLIENT_ID and JIRA_OAUTH_CLIENT_SECRET'] });
    expect(loadConfig({ ...jira, JIRA_AUTH_MODE: 'pat', JIRA_OAUTH_CLIENT_ID: 'client', JIRA_OAUTH_CLIENT_SECRET: 'client-secret', PUBLIC_URL: 'https://px.acme.test' })).toEqual({ ok: false, problems: ['JIRA_AUTH_MODE: pat needs JIRA_PAT (with JIRA_USER_EMAIL on Cloud)'] });
    expect(loadConfig({ ...jira, JIRA_OAUTH_CLIENT_ID: 'client', JIRA_OAUTH_CLIENT_SECRET: 'client-secret' })).toEqual({ ok: false, problems: ['PUBLIC_URL: is required with Jira OAuth (the consent comes back to <PUBLIC_URL>/oauth/callback/jira)'] });
    expect(loadConfig({ ...jira, JIRA_USER_EMAIL: 'bot@acme.test' })).toEqual({ ok: false, problems: ['JIRA_USER_EMAIL: is only used with JIRA_PAT (a Cloud API token); set JIRA_PAT too'] });
    expect(loadConfig({ ...jira, JIRA_OAUTH_CLIENT_ID: 'client', JIRA_OAUTH_CLIENT_SECRET: 'client-secret', PUBLIC_URL: 'https://px.acme.test' }).ok).toBe(true);
    expect(loadConfig({ ...jira, JIRA_PAT: 'jira-api-token', JIRA_USER_EMAIL: 'bot@acme.test' }).ok).toBe(true);
  });

  it('refuses an evidence store or scanner that is half described, or not built', () => {
    expect(loadConfig({ EVIDENCE_STORE: 's3' })).toEqual({ ok: false, problems: ['EVIDENCE_S3_BUCKET: is required with EVIDENCE_STORE=s3'] });
    expect(loadConfig({ EVIDENCE_STORE: 'sharepoint' })).toEqual({ ok: false, problems: ['EVIDENCE_STORE: sharepoint is not built in this version (local or s3)'] });
    expect(loadConfig({ EVIDENCE_STORE: 's3', EVIDENCE_S3_BUCKET: 'evidence', AWS_EXTERNAL_ID: 'partner-id' })).toEqual({ ok: false, problems: ['AWS_EXTERNAL_ID: is only used with AWS_ROLE_ARN (the role it is presented to); set AWS_ROLE_ARN too'] });
    expect(loadConfig({ CLAMAV_URL: 'http://clamd:3310' })).toMatchObject({ ok: false, problems: [expect.stringMatching(/^CLAMAV_URL: .*must be tcp:\/\/host:port, unix:\/\/\/path\/to\/socket or an absolute socket path/)] });
    expect(loadConfig({ EVIDENCE_MAX_BYTES: '0' })).toMatchObject({ ok: false, problems: [expect.stringMatching(/^EVIDENCE_MAX_BYTES: /)] });
    const s3 = loadConfig({ EVIDENCE_STORE: 's3', EVIDENCE_S3_BUCKET: 'evidence', AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/projectx-evidence', AWS_EXTERNAL_ID: 'partner-id', CLAMAV_URL: 'unix:///run/clamav/clamd.ctl', EVIDENCE_RETENTION_DAYS: '2555' });
    expect(s3).toMatchObject({ ok: true, config: { EVIDENCE_STORE: 's3', EVIDENCE_S3_OBJECT_LOCK_MODE: 'COMPLIANCE', EVIDENCE_RETENTION_DAYS: 2555, EVIDENCE_MAX_BYTES: 25 * 1024 * 1024, EVIDENCE_SCAN_REQUIRED: false } });
  });

  it('parses a rotatable encryption key list, the first key current', () => {
    const k1 = Buffer.alloc(32, 1).toString('base64');
    const k0 = Buffer.alloc(32, 2).toString('base64');
    const result = loadConfig({ PROJECTX_ENCRYPTION_KEY: `k1:${k1}, k0:${k0}` });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.PROJECTX_ENCRYPTION_KEY?.map((key) => key.id)).toEqual(['k1', 'k0']);
    expect(result.config.PROJECTX_ENCRYPTION_KEY?.[0]?.key.length).toBe(32);
  });
});

describe('secretValues', () => {
  it('collects secrets as given and trimmed', () => {
    expect(secretValues({ SLACK_SIGNING_SECRET: 'sig-secret-abc123\n' })).toEqual(['sig-secret-abc123\n', 'sig-secret-abc123']);
  });

  it('collects set secrets and the parts that can leak alone', () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const values = secretValues({
      SLACK_SIGNING_SECRET: 'sig-secret-123',
      DATABASE_URL: 'postgres://app:db-pass-456@db.internal/px',
      PROJECTX_ENCRYPTION_KEY: `k1:${key}`,
      PORT: '3000',
    });
    expect(values).toEqual(expect.arrayContaining(['sig-secret-123', 'db-pass-456', key]));
    expect(values).not.toContain('3000');
  });
});

describe('integration catalog', () => {
  it('names only real configuration variables', () => {
    const known = new Set<string>(CONFIG_VARIABLES);
    for (const module of modules) {
      for (const set of module.configuredBy) for (const variable of set) expect(known, `${module.id}: ${variable}`).toContain(variable);
    }
    for (const entry of NOT_BUILT) for (const variable of entry.variables) expect(known, `${entry.id}: ${variable}`).toContain(variable);
  });

  it('reports what is missing for the closest option', () => {
    const result = loadConfig({ SERVICENOW_BASE_URL: 'https://acme.service-now.com', SERVICENOW_USER: 'svc' });
    if (!result.ok) throw new Error('must parse');
    const servicenow = describeIntegrations(result.config, modules).find((status) => status.id === 'servicenow');
    expect(servicenow).toMatchObject({ state: 'not_configured', missing: ['SERVICENOW_PASSWORD'] });
    const configured = loadConfig({ SMTP_HOST: 'mail.example.test', SMTP_FROM_ADDRESS: 'projectx@example.test' });
    if (!configured.ok) throw new Error('must parse');
    expect(describeIntegrations(configured.config, modules).find((status) => status.id === 'email')?.state).toBe('configured');
  });
});

describe('.env.example', () => {
  const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
  const listed = new Set([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((match) => match[1]));

  it('documents every variable the service reads, and no other', () => {
    expect([...listed].sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it('marks the variables of integrations not built in this version, and only those, as not built', () => {
    // Each variable belongs to the section (a `# --- … ---` header) it is listed under.
    let header = '';
    const sectionOf = new Map<string, string>();
    for (const line of example.split('\n')) {
      if (line.startsWith('# ---')) header = line;
      const variable = /^#?\s*([A-Z][A-Z0-9_]+)=/.exec(line)?.[1];
      if (variable) sectionOf.set(variable, header);
    }
    const unbuilt = new Set(NOT_BUILT.flatMap((entry) => entry.variables));
    for (const [variable, section] of sectionOf) expect(section.includes('not built in this version'), `${variable} under ${section}`).toBe(unbuilt.has(variable as never));
  });

  it('holds no secret values', () => {
    for (const variable of SECRET_VARIABLES) {
      const line = example.split('\n').find((candidate) => new RegExp(`^#?\\s*${variable}=`).test(candidate));
      expect(line, variable).toMatch(new RegExp(`^#?\\s*${variable}=$`));
    }
  });
});
