/**
 * `projectx connectors list|configure|enable|disable`: instances configured from the CLI (settings from a file,
 * credentials as JSON on stdin, encrypted), the enabled flag, and schedules that follow it at once.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectorsVerb } from '../../../src/connectors/sdk/cli.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { loadInstance } from '../../../src/connectors/sdk/instances.ts';
import { servicenow } from '../../../src/connectors/servicenow/index.ts';
import type { OperatorContext } from '../../../src/cli/context.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { tempPath } from '../../support/temp.ts';

let fx: DomainFixture;
let ctx: OperatorContext;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);

beforeAll(async () => {
  fx = await domainFixture();
  ctx = operatorContext(fx, { keyring });
});
afterAll(() => fx.close());

async function run(args: string[], stdin = '') {
  try {
    return await runOperator(ctx, connectorsVerb, args, stdin);
  } catch (error) {
    return { code: (error as { exitCode?: number }).exitCode ?? -1, out: [], err: [(error as Error).message] };
  }
}

describe('projectx connectors', () => {
  it('configures an instance from a settings file and credentials on stdin, enables it, and schedules follow', async () => {
    const file = tempPath('sn-settings', '.json');
    await writeFile(file, JSON.stringify({ baseUrl: 'https://acme.service-now.com', clientId: 'projectx', pageSize: 200 }));
    const created = await run(['configure', 'servicenow', '--instance', 'eu', '--settings-file', file, '--credentials-stdin'], JSON.stringify({ client_secret: 'the-client-secret-1' }));
    expect(created).toMatchObject({ code: 0, out: ['servicenow:eu created (disabled: enable it with projectx connectors enable servicenow --instance eu)'] });
    const row = await fx.tdb.db.selectFrom('integration_configs').selectAll().where('name', '=', 'eu').executeTakeFirstOrThrow();
    expect(JSON.stringify(row.credentials)).not.toContain('the-client-secret-1');
    expect((await loadInstance(fx.tdb.db, keyring, servicenow, row.id)).credential('client_secret')).toBe('the-client-secret-1');
    expect(await fx.jobs.boss.getSchedules('connector.sync')).toHaveLength(0);

    expect(await run(['enable', 'servicenow', '--instance', 'eu'])).toMatchObject({ code: 0, out: ['servicenow:eu enabled'] });
    expect((await fx.jobs.boss.getSchedules('connector.sync')).map((schedule) => schedule.key).sort()).toEqual([`${row.id}/change_request`, `${row.id}/incident`]);
    expect((await run(['list'])).out).toEqual([expect.stringMatching(/^servicenow:eu \(production\) {2}enabled {2}health unknown {2}circuits read closed, write closed$/)]);

    // Credentials alone can be changed; the settings stay.
    expect(await run(['configure', 'servicenow', '--instance', 'eu', '--credentials-stdin'], JSON.stringify({ client_secret: 'the-client-secret-2' }))).toMatchObject({ code: 0, out: ['servicenow:eu updated'] });
    const after = await loadInstance(fx.tdb.db, keyring, servicenow, row.id);
    expect(after.credential('client_secret')).toBe('the-client-secret-2');
    expect(after.settings.pageSize).toBe(200);

    expect(await run(['disable', 'servicenow', '--instance', 'eu'])).toMatchObject({ code: 0, out: ['servicenow:eu disabled'] });
    expect(await fx.jobs.boss.getSchedules('connector.sync')).toHaveLength(0);
    const audit = await fx.tdb.db.selectFrom('audit_log').select('action').where('object_id', '=', 'servicenow:eu').orderBy('seq').execute();
    expect(audit.map((entry) => entry.action)).toEqual(['integration.configure', 'integration.enable', 'integration.configure', 'integration.disable']);
    const credentialAudit = await fx.tdb.db.selectFrom('integration_credentials_audit').select(['action', 'actor']).where('config_id', '=', row.id).orderBy('id').execute();
    expect(credentialAudit).toEqual([{ action: 'credentials.created', actor: 'cli' }, { action: 'credentials.updated', actor: 'cli' }]);
  });

  it('refuses bad input with a message and a non-zero exit', async () => {
    expect(await run(['configure', 'servicenow', '--credentials-stdin'], 'not json')).toMatchObject({ code: 1, err: [expect.stringContaining('expects a JSON object')] });
    expect(await run(['configure', 'servicenow', '--credentials-stdin'], JSON.stringify({ token: 'x' }))).toMatchObject({ code: 1, err: [expect.stringContaining('has no credential "token"')] });
    const file = tempPath('sn-bad', '.json');
    await writeFile(file, JSON.stringify({ baseUrl: 'ftp://nope', pageSize: 0 }));
    expect(await run(['configure', 'servicenow', '--settings-file', file])).toMatchObject({ code: 1, err: [expect.stringMatching(/invalid ServiceNow settings: baseUrl: .*pageSize/)] });
    expect(await run(['configure', 'servicenow', '--instance', 'new', '--credentials-stdin'], JSON.stringify({ client_secret: 'x'.repeat(10) }))).toMatchObject({ code: 1, err: [expect.stringContaining('needs its settings')] });
    expect(await run(['enable', 'servicenow', '--instance', 'nowhere'])).toMatchObject({ code: 1, err: [expect.stringContaining('no ServiceNow instance named nowhere')] });
    expect(await run(['enable', 'nope'])).toMatchObject({ code: 2 });
    expect(await run(['frobnicate'])).toMatchObject({ code: 2 });
  });
});
