/**
 * Writes to connected systems (acknowledgements, remediation tasks), in order and never lost.
 *
 * A domain event's routing job asks each connector which writes the event calls for (`push.fromEvent`) and
 * records them in `integration_pushes` (one per event and operation, however often the job runs), then wakes the
 * instance's drainer (`connector.push`, one at a time per instance). The drainer sends the instance's pending
 * writes strictly in the order they were recorded:
 *
 * - the write circuit (src/connectors/sdk/breaker.ts) open: nothing is sent; the writes wait where they are
 *   (degraded mode) and the drainer comes back when a probe is due. Pulls have their own circuit and go on;
 * - success: marked sent, with what the system answered recorded in the same transaction (`sent`), so that
 *   our own change, read back by the next pull, is no change;
 * - a rate limit or a short outage: the write waits for the time given; 5xx and network errors are retried
 *   with backoff up to 5 attempts (the runbook), then the write is marked failed and an alert raised; the
 *   writes after it wait until then, so order holds. Once the failures open the circuit, the system is down
 *   as a whole: the write waits for the probe instead, and none is given up during an outage. A write out of
 *   attempts is compared with the next write of another record: if that one goes through, the first is
 *   refused on its own (failed, alerted, replayable) and the rest go on; if not, everything waits;
 * - a rate limit spends no attempt and is no failure of the system;
 * - refused for good (4xx other than 401/429): marked failed with the answer, alerted, and the next one goes.
 */
import { type Kysely, type Selectable, sql } from 'kysely';
import type { Clock } from '../../clock.ts';
import type { Database, IntegrationPushesTable } from '../../db/schema.ts';
import { type DomainEvent, newEvent } from '../../domain/events.ts';
import type { Breaker } from './breaker.ts';
import type { ConnectorDefinition, ConnectorInstance, ConnectorRuntime, PushIntent } from './contract.ts';
import { isAuthFailure, noteAuthFailure } from './auth-alert.ts';
import { type UpstreamFailure, backoff } from './http-client.ts';

export const PUSH_MAX_ATTEMPTS = 5;
/** Writes one drain sends before it hands over to a fresh job (so one instance cannot hold a worker forever). */
const DRAIN_BATCH = 200;

/** Records the writes `event` calls for; returns the instances that now have something to send. */
export async function recordPushes(db: Kysely<Database>, connectors: readonly ConnectorDefinition[], event: DomainEvent): Promise<{ connector: string; instanceId: string }[]> {
  const woken = new Map<string, { connector: string; instanceId: string }>();
  for (const connector of connectors) {
    if (!connector.push) continue;
    const intents: PushIntent[] = await connector.push.fromEvent(event, { db });
    for (const intent of intents) {
      if (!connector.push.operations[intent.operation]) throw new Error(`${connector.id} has no push operation ${intent.operation}`);
      const inserted = await db
        .insertInto('integration_pushes')
        // Due from the moment of the event, on the service's clock (not the database's).
        .values({ config_id: intent.instanceId, operation: intent.operation, record_key: intent.recordKey, payload: JSON.stringify(intent.payload), source_event_id: event.id, correlation_id: event.id, next_attempt_at: new Date(event.occurredAt), created_at: new Date(event.occurredAt) })
        .onConflict((oc) => oc.columns(['config_id', 'source_event_id', 'operation']).where('source_event_id', 'is not', null).doNothing())
        .returning('id')
        .executeTakeFirst();
      if (inserted) woken.set(intent.instanceId, { connector: connector.id, instanceId: intent.instanceId });
    }
  }
  return [...woken.values()];
}

export interface DrainInput<Settings, Client> {
  runtime: ConnectorRuntime;
  connector: ConnectorDefinition<Settings, Client>;
  instance: ConnectorInstance<Settings>;
  client: Client;
  breaker: Breaker;
  clock: Clock;
  random?: () => number;
}

export type DrainOutcome = { sent: number; failed: number; next: Date | undefined; waiting: 'circuit_open' | 'retry' | 'more' | undefined };

export async function drainPushes<Settings, Client>(input: DrainInput<Settings, Client>): Promise<DrainOutcome> {
  const { runtime, connector, instance } = input;
  const push = connector.push;
  if (!push) return { sent: 0, failed: 0, next: undefined, waiting: undefined };
  type Row = Selectable<IntegrationPushesTable>;
  /** Sends one write; on success marks it sent with what the system answered, in one transaction. */
  const deliver = async (row: Row, now: Date): Promise<{ ok: true } | { ok: false; failure: UpstreamFailure } | { ok: false; invalid: true }> => {
    const operation = push.operations[row.operation];
    const payload = operation?.payload.safeParse(row.payload);
    if (!operation || !payload?.success) return { ok: false, invalid: true };
    const result = await operation.send({ client: input.client, instance, payload: payload.data, runtime });
    if (!result.ok) return result;
    await runtime.db.transaction().execute(async (trx) => {
      const kept = operation.sent ? await operation.sent({ trx, connector, instance, payload: payload.data, response: result.value.body, runtime, now }) : {};
      await trx.updateTable('integration_pushes').set({ status: 'sent', sent_at: now, attempts: row.attempts + 1, result: JSON.stringify(kept), last_error: null }).where('id', '=', row.id).execute();
    });
    return { ok: true };
  };
  let sent = 0;
  let failed = 0;
  for (let round = 0; round < DRAIN_BATCH; round++) {
    const row = await runtime.db.selectFrom('integration_pushes').selectAll().where('config_id', '=', instance.id).where('status', '=', 'pending').orderBy('id').limit(1).executeTakeFirst();
    if (!row) return { sent, failed, next: undefined, waiting: undefined };
    const now = input.clock.now();
    if (row.next_attempt_at.getTime() > now.getTime()) return { sent, failed, next: row.next_attempt_at, waiting: 'retry' };
    const admission = await input.breaker.admit();
    if (!admission.allowed) return { sent, failed, next: admission.retryAt, waiting: 'circuit_open' };
    const result = await deliver(row, now);
    if (result.ok) {
      await input.breaker.succeeded();
      sent++;
      continue;
    }
    if ('invalid' in result) {
      await markFailed(runtime, connector, instance, row, { code: 'invalid_push', message: push.operations[row.operation] ? 'the recorded payload no longer fits its operation' : `no operation ${row.operation}` }, now);
      failed++;
      continue;
    }
    const failure = result.failure;
    const attempts = row.attempts + 1;
    // Refused credentials count toward the on-call page like a pull's (the circuit handles the waiting).
    if (isAuthFailure(failure)) await noteAuthFailure({ runtime, connector, instance }, failure);
    const lastError = JSON.stringify({ code: failure.code, ...('status' in failure && failure.status !== undefined ? { status: failure.status } : {}) });
    const permanent = failure.kind === 'http' && failure.status >= 400 && failure.status < 500 && failure.status !== 401 && failure.status !== 408;
    if (permanent) {
      // The system refused this write: it will not take it later either. The next one goes.
      await markFailed(runtime, connector, instance, row, { code: failure.code, message: `refused with HTTP ${failure.status}`, body: failure.body }, now);
      failed++;
      continue;
    }
    if (failure.kind === 'deferred' && failure.code === 'rate_limited') {
      // A rate limit is the system asking for time, not failing: no attempt spent, no circuit involved.
      await runtime.db.updateTable('integration_pushes').set({ next_attempt_at: failure.retryAt, last_error: lastError }).where('id', '=', row.id).execute();
      return { sent, failed, next: failure.retryAt, waiting: 'retry' };
    }
    if (attempts >= PUSH_MAX_ATTEMPTS) {
      // Out of attempts: this write, or the system? A later write of another record settles it. If that one
      // goes through, this one is refused on its own (say, a business rule failing for this record): it is
      // failed and alerted, and the rest go on. If it fails too, the system is down: everything waits.
      const control = await runtime.db.selectFrom('integration_pushes').selectAll().where('config_id', '=', instance.id).where('status', '=', 'pending').where('id', '>', row.id).where('record_key', '<>', row.record_key).orderBy('id').limit(1).executeTakeFirst();
      if (control && (await deliver(control, now)).ok) {
        await input.breaker.succeeded();
        await markFailed(runtime, connector, instance, row, { code: failure.code, message: `failed ${attempts} times while later writes went through` }, now);
        sent++;
        failed++;
        continue;
      }
    }
    const circuit = await input.breaker.failed(failure.code);
    if (circuit.state !== 'closed') {
      // The system is failing as a whole (degraded mode): this write and those after it wait until a probe
      // finds it back. Nothing is given up during an outage.
      await runtime.db.updateTable('integration_pushes').set({ attempts, last_error: lastError }).where('id', '=', row.id).execute();
      return { sent, failed, next: circuit.probeAt ?? now, waiting: 'circuit_open' };
    }
    if (attempts >= PUSH_MAX_ATTEMPTS && failure.kind !== 'deferred') {
      // The circuit stayed closed (other calls went through meanwhile): this write is refused on its own.
      await markFailed(runtime, connector, instance, row, { code: failure.code, message: `failed ${attempts} times` }, now);
      failed++;
      continue;
    }
    const next = failure.kind === 'deferred' ? failure.retryAt : new Date(now.getTime() + 5000 + backoff(attempts, 10_000, input.random ?? Math.random));
    await runtime.db.updateTable('integration_pushes').set({ attempts, next_attempt_at: next, last_error: lastError }).where('id', '=', row.id).execute();
    return { sent, failed, next, waiting: 'retry' };
  }
  return { sent, failed, next: input.clock.now(), waiting: 'more' };
}

async function markFailed<Settings, Client>(
  runtime: ConnectorRuntime,
  connector: ConnectorDefinition<Settings, Client>,
  instance: ConnectorInstance<Settings>,
  row: { id: string; operation: string; record_key: string; attempts: number },
  error: { code: string; message: string; body?: unknown },
  now: Date,
): Promise<void> {
  await runtime.db.transaction().execute(async (trx) => {
    await trx.updateTable('integration_pushes').set({ status: 'failed', attempts: row.attempts + 1, last_error: JSON.stringify(error) }).where('id', '=', row.id).execute();
    await runtime.events.emit(
      trx,
      newEvent(
        {
          type: 'integration.push_failed',
          subject: { kind: 'integration', id: instance.id, label: `${connector.id}:${instance.name}` },
          summary: `${connector.title}: ${row.operation} for ${row.record_key} failed for good (${error.code}: ${error.message}). Replay it with projectx pushes replay ${row.id}. Runbook ${connector.runbookId}.`,
          priority: 3,
          data: { connector: connector.id, instance: instance.id, push: row.id, operation: row.operation, recordKey: row.record_key, errorCode: error.code, runbookId: connector.runbookId },
        },
        now,
      ),
    );
  });
}

/** Pending writes per connector, for /metrics (`integration_pushes_pending`). */
export async function pendingPushes(db: Kysely<Database>): Promise<{ connector: string; pending: number; oldestSeconds: number }[]> {
  const rows = await db
    .selectFrom('integration_pushes')
    .innerJoin('integration_configs', 'integration_configs.id', 'integration_pushes.config_id')
    .select(['integration_configs.type', (eb) => eb.fn.countAll<string>().as('n'), sql<string>`extract(epoch from now() - min(integration_pushes.created_at))`.as('oldest')])
    .where('integration_pushes.status', '=', 'pending')
    .groupBy('integration_configs.type')
    .execute();
  return rows.map((row) => ({ connector: row.type, pending: Number(row.n), oldestSeconds: Number(row.oldest) }));
}
