/**
 * Status tells the truth: integrations this version does not have are "not built in this version" at start-up
 * and in `/projectx status`, whatever variables are set, never "configured"; built ones say what is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleSession } from '../../src/bot/console/session.ts';
import { loadConfig } from '../../src/config.ts';
import { NOT_BUILT, describeIntegrations } from '../../src/connectors/catalog.ts';
import { integrationHealth } from '../../src/connectors/health.ts';
import { type Service, startService } from '../../src/main.ts';
import { modules } from '../../src/modules.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';
import { captureLogs } from '../support/logs.ts';

/** Every variable of every unbuilt integration, set to something valid. */
const UNBUILT_ENV = {
  MICROSOFT_APP_ID: '00000000-0000-0000-0000-000000000001',
  MICROSOFT_APP_PASSWORD: 'a-teams-app-password',
  JIRA_BASE_URL: 'https://acme.atlassian.net',
  JIRA_PAT: 'a-jira-personal-token',
  ONETRUST_BASE_URL: 'https://app.onetrust.com',
  ONETRUST_API_TOKEN: 'a-onetrust-token',
  EVIDENCE_S3_BUCKET: 'acme-evidence',
  SHAREPOINT_SITE_ID: 'site',
  SHAREPOINT_LIBRARY_ID: 'library',
  EVIDENCE_GOOGLE_DRIVE_FOLDER_ID: 'folder',
};

function configFor(env: Record<string, string>) {
  const loaded = loadConfig(env);
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  return loaded.config;
}

describe('integration status', () => {
  it('calls every unbuilt integration not built, naming the variables it ignores', () => {
    const statuses = describeIntegrations(configFor(UNBUILT_ENV), modules);
    for (const entry of NOT_BUILT) {
      const status = statuses.find((candidate) => candidate.id === entry.id);
      expect(status, entry.id).toMatchObject({ state: 'not_built' });
      expect(status!.ignored.length, entry.id).toBeGreaterThan(0);
    }
    expect(statuses.find((status) => status.id === 'jira')?.ignored).toEqual(['JIRA_BASE_URL', 'JIRA_PAT']);
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
      expect(text).not.toMatch(/(Teams|Jira|OneTrust|S3|SharePoint|Google Drive)[^\n]*: (configured|healthy|unknown)/);
      expect(text).toContain('Slack: not configured (set SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)');
      expect(text).toContain('Evidence store (local files): configured');
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
      expect(messages).toContain('Jira: not built in this version (JIRA_BASE_URL, JIRA_PAT ignored)');
      expect(messages).toContain('Microsoft Teams: not built in this version (MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD ignored)');
      expect(messages).toContain('Evidence store: S3: not built in this version (EVIDENCE_S3_BUCKET ignored)');
      for (const entry of NOT_BUILT) expect(messages, entry.id).not.toContain(`${entry.title}: configured`);
    });
  });
});
