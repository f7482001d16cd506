/**
 * Status tells the truth: integrations this version does not have are "not built in this version" at start-up
 * and in `/projectx status`, whatever variables are set, never "configured"; built ones say what is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleSession } from '../../src/bot/console/session.ts';
import { loadConfig } from '../../src/config.ts';
import { NOT_BUILT, describeIntegrations, halfConfigured } from '../../src/connectors/catalog.ts';
import { integrationHealth } from '../../src/connectors/health.ts';
import { type Service, startService } from '../../src/main.ts';
import { modules } from '../../src/modules.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';
import { captureLogs } from '../support/logs.ts';

/** Every variable of every unbuilt integration, set to something valid. */
const UNBUILT_ENV = {
  ONETRUST_BASE_URL: 'https://app.onetrust.com',
  ONETRUST_API_TOKEN: 'a-onetrust-token',
  SHAREPOINT_SITE_ID: 'site',
  SHAREPOINT_LIBRARY_ID: 'library',
  EVIDENCE_GOOGLE_DRIVE_FOLDER_ID: 'folder',
};

function configFor(env: Record<string, string>) {
  const loaded = loadConfig(env);
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  return loaded.config;
}

describe('half-configured Teams', () => {
  it('refuses an app id without a password (or managed identity) and a tenant, naming the ways to complete it', () => {
    const problems = halfConfigured(configFor({ MICROSOFT_APP_ID: '00000000-0000-4000-8000-0000000000aa' }), modules);
    expect(problems).toEqual([expect.stringMatching(/^Microsoft Teams is half configured: MICROSOFT_APP_ID is set, but MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID are missing \(or set MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TYPE, or MICROSOFT_APP_TYPE and MICROSOFT_APP_TENANT_ID\)$/)]);
    expect(halfConfigured(configFor({ MICROSOFT_APP_ID: '00000000-0000-4000-8000-0000000000aa', MICROSOFT_APP_PASSWORD: 'app-password-1', MICROSOFT_APP_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47' }), modules)).toEqual([]);
  });
});

describe('integration status', () => {
  it('calls every unbuilt integration not built, naming the variables it ignores', () => {
    const statuses = describeIntegrations(configFor(UNBUILT_ENV), modules);
    for (const entry of NOT_BUILT) {
      const status = statuses.find((candidate) => candidate.id === entry.id);
      expect(status, entry.id).toMatchObject({ state: 'not_built' });
      expect(status!.ignored.length, entry.id).toBeGreaterThan(0);
    }
    expect(statuses.find((status) => status.id === 'onetrust')?.ignored).toEqual(['ONETRUST_BASE_URL', 'ONETRUST_API_TOKEN']);
  });

  describe('in /projectx status', () => {
    let fx: DomainFixture;
    beforeAll(async () => {
      fx = await domainFixture();
    });
    afterAll(() => fx.close());

    it('says "not built in this version" for each, and what a built one still needs', async () => {
      const config = configFor(UNBUILT_ENV);
      const user = await fx.user({ roles: ['viewer'] });
      const session = new ConsoleSession({ domain: fx.deps, actor: { surface: 'console', user }, integrations: () => integrationHealth(fx.tdb.db, config, modules) });
      const { text } = await session.handle('status');
      for (const entry of NOT_BUILT) expect(text).toContain(`${entry.title}: not built in this version`);
      expect(text).not.toMatch(/(OneTrust|S3|SharePoint|Google Drive)[^\n]*: (configured|healthy|unknown)/);
      expect(text).toContain('Slack: not configured (set SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)');
      expect(text).toContain('Evidence store: configured');
      // Whether evidence is scanned for viruses is said too.
      expect(text).toContain('Evidence virus scan: not configured (set CLAMAV_URL; evidence is NOT scanned for viruses (CLAMAV_URL is unset): files are recorded as unscanned)');
    });
  });

  describe('at start-up', () => {
    let tdb: TestDatabase;
    let service: Service | undefined;
    beforeAll(async () => {
      tdb = await createTestDatabase();
    });
    afterAll(async () => {
      await service?.stop();
      await tdb.drop();
    });

    it('logs each unbuilt integration as not built (with what it ignores), never as configured', async () => {
      const logs = captureLogs({ level: 'info' });
      service = await startService({ config: configFor({ ...UNBUILT_ENV, DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0' }), role: 'web', logger: logs.logger });
      const messages = logs.lines().map((line) => String(line.msg));
      expect(messages).toContain('OneTrust: not built in this version (ONETRUST_BASE_URL, ONETRUST_API_TOKEN ignored)');
      expect(messages).toContain('Evidence store: SharePoint: not built in this version (SHAREPOINT_SITE_ID, SHAREPOINT_LIBRARY_ID ignored)');
      expect(messages).toContain('Evidence virus scan: set CLAMAV_URL; evidence is NOT scanned for viruses (CLAMAV_URL is unset): files are recorded as unscanned');
      for (const entry of NOT_BUILT) expect(messages, entry.id).not.toContain(`${entry.title}: configured`);
    });
  });
});
