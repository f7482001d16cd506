/**
 * The connector framework's operator verbs over what is configured and waiting (`sync` and `reconcile`, which
 * run something now, are in cli-runs.ts):
 *
 * - `projectx connectors list | enable | disable | configure`: instances, their health and circuits; the
 *   runbook's `integration.<name>.enabled` flag; settings from a JSON file and credentials as a JSON object on
 *   stdin (never on the command line, where shell history would keep them). Schedules follow at once.
 * - `projectx pushes list | replay`: writes to connected systems waiting (degraded mode), failed for good, or
 *   sent; a replay puts a failed one back in line (audited) and wakes its instance's sender.
 */
import { readFile } from 'node:fs/promises';
import { UsageError, fail, limitOption, one, parse } from '../../cli/args.ts';
import { audit } from '../../cli/audit.ts';
import type { OperatorContext } from '../../cli/context.ts';
import { printList } from '../../cli/output.ts';
import { type CliVerb, type Io, defineVerb } from '../../cli/verb.ts';
import { connectorDeliveries, deliveriesKey } from '../../jobs/connector-deliveries.ts';
import { wakePushes } from '../../jobs/connector-push.ts';
import { installConnectorSchedules } from '../../jobs/connector-sync.ts';
import { connectorNamed } from './cli-runs.ts';
import { AUTHORIZE_LINK_DEFAULT_TTL_MS, AUTHORIZE_LINK_MAX_TTL_MS, createAuthorizeLink } from './consent.ts';
import { InstanceError, configureInstance, ensureInstanceFromEnv, loadInstance } from './instances.ts';

const PUSH_STATUSES = ['pending', 'failed', 'sent'] as const;

export const pushesVerb: CliVerb = defineVerb({
  name: 'pushes',
  summary: 'Writes to connected systems: waiting, failed for good, sent',
  commands: [
    {
      name: 'list',
      usage: 'pushes list [--status pending|failed|sent] [--limit <n>]',
      summary: 'Failed ones by default, oldest first.',
      list: true,
      async run(ctx, args, io) {
        const { values } = parse(args, { status: { type: 'string' }, limit: { type: 'string' } });
        const status = one(values.status) ?? 'failed';
        if (!PUSH_STATUSES.includes(status as never)) throw new UsageError(`--status must be one of ${PUSH_STATUSES.join(', ')}`);
        const rows = await ctx.db
          .selectFrom('integration_pushes')
          .innerJoin('integration_configs', 'integration_configs.id', 'integration_pushes.config_id')
          .select(['integration_pushes.id', 'integration_configs.type', 'integration_configs.name', 'operation', 'record_key', 'attempts', 'last_error', 'integration_pushes.created_at'])
          .where('status', '=', status as (typeof PUSH_STATUSES)[number])
          .orderBy('integration_pushes.id')
          .limit(limitOption(values.limit))
          .execute();
        printList(io, rows, {
          line: (row) => {
            const error = (row.last_error ?? {}) as { code?: string; message?: string };
            return `${row.id}  ${row.created_at.toISOString()}  ${row.type}:${row.name}  ${row.operation} ${row.record_key}  attempts ${row.attempts}${error.code ? `  ${error.code}${error.message ? `: ${error.message}` : ''}` : ''}`;
          },
          json: (row) => ({ id: row.id, connector: row.type, instance: row.name, operation: row.operation, recordKey: row.record_key, status, attempts: row.attempts, lastError: row.last_error, createdAt: row.created_at }),
          empty: `no ${status} writes`,
        });
        return 0;
      },
    },
    {
      name: 'replay',
      usage: 'pushes replay <id>',
      summary: 'Puts a failed write back in line (audited) and wakes its sender.',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const id = positionals[0];
        if (!id || !/^\d{1,18}$/.test(id) || positionals.length > 1) throw new UsageError('pushes replay takes one write id (a number, from pushes list)');
        const row = await ctx.db
          .updateTable('integration_pushes')
          .set({ status: 'pending', attempts: 0, next_attempt_at: ctx.domain.clock.now(), last_error: null })
          .where('id', '=', id)
          .where('status', '=', 'failed')
          .returning(['config_id', 'operation', 'record_key'])
          .executeTakeFirst();
        if (!row) return fail(`no failed write ${id} (list them with: projectx pushes list)`);
        const instance = await ctx.db.selectFrom('integration_configs').select('type').where('id', '=', row.config_id).executeTakeFirstOrThrow();
        await audit(ctx, 'integration.push.replay', 'integration_push', id, { operation: row.operation, recordKey: row.record_key });
        await wakePushes(ctx.jobs, { connector: instance.type, instanceId: row.config_id });
        io.out(`write ${id} (${row.operation} ${row.record_key}) is back in line`);
        return 0;
      },
    },
  ],
});

export const connectorsVerb: CliVerb = defineVerb({
  name: 'connectors',
  summary: 'Connector instances: list, configure, authorize, enable, disable; their webhook deliveries',
  commands: [
    {
      name: 'list',
      usage: 'connectors list',
      summary: 'Each instance: enabled, health, circuits, last success.',
      list: true,
      async run(ctx, args, io) {
        parse(args, {});
        const rows = await ctx.db
          .selectFrom('integration_configs')
          .leftJoin('integration_health_metrics', 'integration_health_metrics.config_id', 'integration_configs.id')
          .select(['integration_configs.id', 'integration_configs.type', 'integration_configs.name', 'integration_configs.environment', 'integration_configs.enabled', 'integration_health_metrics.status', 'integration_health_metrics.last_success_at', 'integration_health_metrics.last_error_code'])
          .orderBy('integration_configs.type')
          .orderBy('integration_configs.name')
          .execute();
        const circuits = await ctx.db.selectFrom('integration_circuits').select(['config_id', 'direction', 'state']).execute();
        const circuitOf = (id: string, direction: string) => circuits.find((circuit) => circuit.config_id === id && circuit.direction === direction)?.state ?? 'closed';
        printList(io, rows, {
          line: (row) =>
            `${row.type}:${row.name} (${row.environment})  ${row.enabled ? 'enabled' : 'disabled'}  health ${row.status ?? 'unknown'}${row.last_error_code ? ` (${row.last_error_code})` : ''}  circuits read ${circuitOf(row.id, 'read')}, write ${circuitOf(row.id, 'write')}${row.last_success_at ? `  last success ${row.last_success_at.toISOString()}` : ''}`,
          json: (row) => ({ connector: row.type, instance: row.name, environment: row.environment, enabled: row.enabled, health: row.status ?? 'unknown', lastErrorCode: row.last_error_code, lastSuccessAt: row.last_success_at, circuits: { read: circuitOf(row.id, 'read'), write: circuitOf(row.id, 'write') } }),
          empty: `no connector instances (configure one in the environment or with: projectx connectors configure <${ctx.connectors.map((c) => c.id).join('|')}> --settings-file …)`,
        });
        return 0;
      },
    },
    {
      name: 'configure',
      usage: 'connectors configure <connector> [--instance <name>] [--settings-file <json>] [--credentials-stdin]',
      summary: 'Credentials as a JSON object on stdin, e.g. {"client_secret": "…"}; a new instance starts disabled.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { instance: { type: 'string' }, 'settings-file': { type: 'string' }, 'credentials-stdin': { type: 'boolean' } });
        if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
        const connector = connectorNamed(ctx, positionals[0]);
        const name = one(values.instance) ?? 'default';
        const settingsFile = one(values['settings-file']);
        if (settingsFile === undefined && values['credentials-stdin'] !== true) throw new UsageError('give --settings-file and/or --credentials-stdin');
        let settings: unknown;
        if (settingsFile) {
          try {
            settings = JSON.parse(await readFile(settingsFile, 'utf8'));
          } catch (error) {
            fail(`cannot read settings from ${settingsFile}: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
        let credentials: Record<string, string> | undefined;
        if (values['credentials-stdin'] === true) {
          const parsed = parseJson(await readAll(io.input));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((value) => typeof value !== 'string')) fail('--credentials-stdin expects a JSON object of credential fields to strings on stdin, e.g. {"client_secret": "…"}');
          credentials = parsed as Record<string, string>;
        }
        try {
          const result = await configureInstance(ctx.db, ctx.keyring, connector, { name, settings, ...(credentials ? { credentials } : {}), actor: 'cli' });
          await audit(ctx, 'integration.configure', 'integration', `${connector.id}:${name}`, { settings: settings !== undefined, credentials: Object.keys(credentials ?? {}).sort() });
          io.out(`${connector.id}:${name} ${result.created ? `created (disabled: enable it with projectx connectors enable ${connector.id}${name === 'default' ? '' : ` --instance ${name}`})` : 'updated'}`);
          return 0;
        } catch (error) {
          if (error instanceof InstanceError) fail(error.message);
          throw error;
        }
      },
    },
    {
      name: 'authorize',
      usage: 'connectors authorize <connector> [--instance <name>] [--ttl <minutes>]',
      summary: 'Prints a single-use link an admin opens to give ProjectX access (OAuth consent); it expires (default 60 minutes, at most 24 hours).',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { instance: { type: 'string' }, ttl: { type: 'string' } });
        if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
        const connector = connectorNamed(ctx, positionals[0]);
        if (!connector.consent) fail(`${connector.title} has no OAuth consent to give (its credentials are configured, not consented to)`);
        const ttl = one(values.ttl);
        if (ttl !== undefined && (!/^\d{1,4}$/.test(ttl) || Number(ttl) < 1 || Number(ttl) * 60_000 > AUTHORIZE_LINK_MAX_TTL_MS)) throw new UsageError(`--ttl takes whole minutes from 1 to ${AUTHORIZE_LINK_MAX_TTL_MS / 60_000}`);
        if (!ctx.config.PUBLIC_URL) fail('PUBLIC_URL is not set: the consent comes back to <PUBLIC_URL>/oauth/callback/' + connector.id);
        const name = one(values.instance) ?? 'default';
        await ensureInstanceFromEnv(ctx.db, ctx.keyring, connector, connector.fromEnv(ctx.config));
        const row = await ctx.db.selectFrom('integration_configs').select('id').where('type', '=', connector.id).where('name', '=', name).executeTakeFirst();
        if (!row) fail(`no ${connector.title} instance named ${name} (projectx connectors list)`);
        let unavailable: string | undefined;
        try {
          unavailable = connector.consent.available(await loadInstance(ctx.db, ctx.keyring, connector, row.id));
        } catch (error) {
          if (error instanceof InstanceError) fail(error.message);
          throw error;
        }
        if (unavailable) fail(unavailable);
        const link = await createAuthorizeLink(ctx.db, { connector: connector.id, instanceId: row.id, publicUrl: ctx.config.PUBLIC_URL, createdBy: 'cli', ttlMs: ttl === undefined ? AUTHORIZE_LINK_DEFAULT_TTL_MS : Number(ttl) * 60_000, now: ctx.domain.clock.now() });
        await audit(ctx, 'integration.authorize_link', 'integration', `${connector.id}:${name}`, { linkId: link.id, expiresAt: link.expiresAt.toISOString() });
        io.out(`Open this link (once, before ${link.expiresAt.toISOString()}) signed in to ${connector.title} as the account ProjectX should act as:\n${link.url}`);
        return 0;
      },
    },
    {
      name: 'deliveries',
      usage: 'connectors deliveries [--status failed|received] [--limit <n>]',
      summary: 'Webhook deliveries from connected systems that failed for good (default) or still wait, oldest first.',
      list: true,
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { status: { type: 'string' }, limit: { type: 'string' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const status = one(values.status) ?? 'failed';
        if (status !== 'failed' && status !== 'received') throw new UsageError('--status must be failed or received');
        const sources = ctx.connectors.filter((connector) => connector.webhook).map((connector) => `${connector.id}:%`);
        const rows = sources.length
          ? await ctx.db
              .selectFrom('inbound_events')
              .select(['id', 'source', 'delivery_id', 'kind', 'received_at', 'error', 'result'])
              .where('status', '=', status)
              .where((eb) => eb.or(sources.map((source) => eb('source', 'like', source))))
              .orderBy('received_at')
              .limit(limitOption(values.limit))
              .execute()
          : [];
        printList(io, rows, {
          line: (row) => {
            const error = (row.error ?? {}) as { code?: string; message?: string };
            const target = (row.result ?? {}) as { externalId?: string };
            return `${row.id}  ${row.received_at.toISOString()}  ${row.source}  ${row.kind}${target.externalId ? ` ${target.externalId}` : ''}${error.code ? `  ${error.code}${error.message ? `: ${error.message}` : ''}` : ''}`;
          },
          json: (row) => ({ id: row.id, source: row.source, deliveryId: row.delivery_id, kind: row.kind, status, receivedAt: row.received_at, result: row.result, error: row.error }),
          empty: `no ${status} connector deliveries`,
        });
        return 0;
      },
    },
    {
      name: 'redeliver',
      usage: 'connectors redeliver <delivery id>',
      summary: 'Puts a failed webhook delivery back in line (audited) and queues its handling.',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const id = positionals[0];
        if (!id || !/^[0-9a-f-]{36}$/i.test(id) || positionals.length > 1) throw new UsageError('connectors redeliver takes one delivery id (a UUID, from connectors deliveries)');
        const row = await ctx.db.selectFrom('inbound_events').select(['id', 'source', 'status']).where('id', '=', id).executeTakeFirst();
        const connector = row ? ctx.connectors.find((candidate) => candidate.webhook && row.source.startsWith(`${candidate.id}:`)) : undefined;
        if (!row || !connector) fail(`no connector delivery ${id} (list them with: projectx connectors deliveries)`);
        if (row.status !== 'failed') fail(`delivery ${id} is ${row.status}, not failed`);
        const instance = await ctx.db.selectFrom('integration_configs').select('id').where('type', '=', connector.id).where('name', '=', row.source.slice(connector.id.length + 1)).executeTakeFirst();
        if (!instance) fail(`the ${connector.title} instance of delivery ${id} no longer exists`);
        const replayed = await ctx.db.transaction().execute(async (trx) => {
          const updated = await trx.updateTable('inbound_events').set({ status: 'received', error: null, processed_at: null }).where('id', '=', id).where('status', '=', 'failed').executeTakeFirst();
          if (Number(updated.numUpdatedRows) === 0) return false;
          await ctx.jobs.enqueue(connectorDeliveries, { connector: connector.id, instanceId: instance.id }, { db: trx, singletonKey: deliveriesKey(instance.id) });
          return true;
        });
        if (!replayed) fail(`delivery ${id} changed while it was being replayed; list it again`);
        await audit(ctx, 'integration.delivery.replay', 'inbound_event', id, { source: row.source });
        io.out(`delivery ${id} (${row.source}) is back in line`);
        return 0;
      },
    },
    ...(['enable', 'disable'] as const).map((action) => ({
      name: action,
      usage: `connectors ${action} <connector> [--instance <name>]`,
      summary: action === 'enable' ? 'Its schedules start at once (every worker sees them).' : 'Its schedules stop; what it would write waits for it.',
      async run(ctx: OperatorContext, args: readonly string[], io: Io) {
        const { values, positionals } = parse(args, { instance: { type: 'string' } });
        if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
        const connector = connectorNamed(ctx, positionals[0]);
        const name = one(values.instance) ?? 'default';
        const changed = await ctx.db.updateTable('integration_configs').set({ enabled: action === 'enable', updated_at: new Date() }).where('type', '=', connector.id).where('name', '=', name).returning('id').executeTakeFirst();
        if (!changed) fail(`no ${connector.title} instance named ${name} (projectx connectors list)`);
        await audit(ctx, `integration.${action}`, 'integration', `${connector.id}:${name}`, {});
        // Schedules follow the flag at once (they live in the database: every worker sees them).
        await installConnectorSchedules(ctx.jobs.boss, ctx.db, ctx.logger, ctx.connectors);
        io.out(`${connector.id}:${name} ${action}d`);
        return 0;
      },
    })),
  ],
});

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
