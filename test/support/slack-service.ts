/**
 * The whole service (role all) on its own database, with Slack configured against a fresh fake Slack, and the
 * real jobs polling every 0.5 s (so deferred and retried jobs are not waited for 5 s). Plus a builder for a
 * ProjectX user linked to a Slack user the fake knows.
 */
import type { Role } from '../../src/db/schema.ts';
import { loadConfig } from '../../src/config.ts';
import { tempPath } from './temp.ts';
import { createUser, linkIdentity } from '../../src/domain/users.ts';
import { serviceJobs } from './jobs.ts';
import { type Service, startService } from '../../src/main.ts';
import type { Logger } from '../../src/logger.ts';
import { type FakeSlack, startFakeSlack } from '../fakes/slack/server.ts';
import { type TestDatabase, createTestDatabase } from './database.ts';
import { SIGNING_SECRET } from './slack.ts';

export const fastJobs = serviceJobs.map((job) => ({
  ...job,
  policy: { ...job.policy, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5, retryDelaySeconds: 0, retryBackoff: false },
}));

export interface SlackService {
  tdb: TestDatabase;
  fake: FakeSlack;
  service: Service;
  /** A ProjectX user linked to Slack user `slackId` in the fake's workspace. */
  linkedUser(input: { email: string; name: string; roles: Role[]; slackId: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startSlackService(logger: Logger, env: Record<string, string> = {}): Promise<SlackService> {
  const tdb = await createTestDatabase();
  const fake = await startFakeSlack();
  const config = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', PROJECTX_DATA_DIR: tempPath('slack-service-data'), SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: fake.botToken, SLACK_API_URL: fake.apiUrl, ...env });
  if (!config.ok) throw new Error(config.problems.join('; '));
  const service = await startService({ config: config.config, role: 'all', logger, jobs: fastJobs });
  return {
    tdb,
    fake,
    service,
    async linkedUser({ email, name, roles, slackId }) {
      const user = await createUser(tdb.db, { email, displayName: name, roles });
      if (!user.ok) throw new Error(user.refusal.message);
      fake.addUser({ id: slackId, teamId: fake.teamId, realName: name, email });
      await linkIdentity(tdb.db, user.value.id, { surface: 'slack', tenant: fake.teamId, externalId: slackId }, 'test');
      return user.value.id;
    },
    async close() {
      await service.stop();
      await fake.close();
      await tdb.drop();
    },
  };
}
