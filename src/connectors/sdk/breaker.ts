/**
 * Circuit breaker per (instance, direction), its state in PostgreSQL (`integration_circuits`) so that every
 * worker of every process sees the same one.
 *
 * - closed: calls go through; `threshold` failures in a row open it.
 * - open: calls are not made until `cooldownMs` has passed. For writes this is degraded mode: pushes wait
 *   in their queue, none is lost; reads (pulls) and inbound webhooks go on, they have their own circuit.
 * - half_open: after the cooldown exactly one caller (an atomic UPDATE decides who) makes a probe call; its
 *   success closes the circuit, its failure opens it for another cooldown. A probe that never reports back
 *   (its process died) is superseded after one more cooldown.
 *
 * Every change of state is a domain event (`integration.degraded` / `integration.recovered`), emitted in the
 * transaction that changes the state, so it is announced exactly once; routing sends it to the connector's
 * alert channel with the runbook id.
 */
import { sql } from 'kysely';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import type { CircuitState } from '../../db/schema.ts';
import type { EventSink } from '../../domain/events.ts';
import { newEvent } from '../../domain/events.ts';
import type { Logger } from '../../logger.ts';

export type Direction = 'read' | 'write';

export interface BreakerOptions {
  db: Db;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  instance: { id: string; name: string };
  connector: { id: string; title: string; runbookId: string };
  direction: Direction;
  /** Failures in a row that open the circuit (default 5). */
  threshold?: number;
  /** How long it stays open before a probe (default 60 s). */
  cooldownMs?: number;
}

export type Admission = { allowed: true; probe: boolean } | { allowed: false; state: CircuitState; retryAt: Date };

export interface Breaker {
  /** May a call be made now? A `probe` admission must report its outcome. */
  admit(): Promise<Admission>;
  succeeded(): Promise<void>;
  /** Records a failure; says what state the circuit is in after it (and when a probe is due, if not closed). */
  failed(code: string): Promise<{ state: CircuitState; probeAt: Date | null }>;
  state(): Promise<CircuitState>;
}

export function createBreaker(options: BreakerOptions): Breaker {
  const threshold = options.threshold ?? 5;
  const cooldownMs = options.cooldownMs ?? 60_000;
  const key = { config_id: options.instance.id, direction: options.direction };
  const label = `${options.connector.title} ${options.direction === 'write' ? 'writes' : 'reads'} (${options.instance.name})`;

  const ensureRow = () =>
    options.db
      .insertInto('integration_circuits')
      .values({ ...key, updated_at: options.clock.now() })
      .onConflict((oc) => oc.columns(['config_id', 'direction']).doNothing())
      .execute();

  const announce = async (trx: Db, state: CircuitState, code: string | null) => {
    const now = options.clock.now();
    const degraded = state === 'open';
    await options.events.emit(
      trx,
      newEvent(
        {
          type: degraded ? 'integration.degraded' : 'integration.recovered',
          subject: { kind: 'integration', id: options.instance.id, label: `${options.connector.id}:${options.instance.name}` },
          summary: degraded
            ? `${label}: circuit open after repeated failures (${code ?? 'unknown'})${options.direction === 'write' ? '; changes wait and will be sent in order when it recovers' : ''}. Runbook ${options.connector.runbookId}.`
            : `${label}: recovered, circuit closed. Runbook ${options.connector.runbookId}.`,
          priority: degraded ? 2 : 3,
          data: { connector: options.connector.id, instance: options.instance.id, direction: options.direction, state, errorCode: code, runbookId: options.connector.runbookId },
        },
        now,
      ),
    );
    options.logger[degraded ? 'warn' : 'info']({ connector: options.connector.id, instance: options.instance.id, direction: options.direction, state, code }, `circuit ${state}`);
  };

  return {
    async admit() {
      const now = options.clock.now();
      const row = await options.db.selectFrom('integration_circuits').select(['state', 'probe_at']).where('config_id', '=', key.config_id).where('direction', '=', key.direction).executeTakeFirst();
      if (!row || row.state === 'closed') return { allowed: true, probe: false };
      if (row.probe_at && row.probe_at.getTime() > now.getTime()) return { allowed: false, state: row.state, retryAt: row.probe_at };
      // Due for a probe: exactly one caller wins it, and the next probe is due a cooldown later in case this
      // one never reports back.
      const won = await options.db
        .updateTable('integration_circuits')
        .set({ state: 'half_open', probe_at: new Date(now.getTime() + cooldownMs), updated_at: now })
        .where('config_id', '=', key.config_id)
        .where('direction', '=', key.direction)
        .where('state', '<>', 'closed')
        .where('probe_at', '<=', now)
        .returning('state')
        .executeTakeFirst();
      return won ? { allowed: true, probe: true } : { allowed: false, state: 'half_open', retryAt: new Date(now.getTime() + cooldownMs) };
    },

    async succeeded() {
      const now = options.clock.now();
      await options.db.transaction().execute(async (trx) => {
        const before = await trx.selectFrom('integration_circuits').select(['state', 'failures']).where('config_id', '=', key.config_id).where('direction', '=', key.direction).forUpdate().executeTakeFirst();
        if (!before || (before.state === 'closed' && before.failures === 0)) return;
        await trx.updateTable('integration_circuits').set({ state: 'closed', failures: 0, opened_at: null, probe_at: null, last_error_code: null, updated_at: now }).where('config_id', '=', key.config_id).where('direction', '=', key.direction).execute();
        if (before.state !== 'closed') await announce(trx, 'closed', null);
      });
    },

    async failed(code) {
      const now = options.clock.now();
      await ensureRow();
      return options.db.transaction().execute(async (trx) => {
        const before = await trx.selectFrom('integration_circuits').select(['state', 'failures']).where('config_id', '=', key.config_id).where('direction', '=', key.direction).forUpdate().executeTakeFirstOrThrow();
        const failures = before.failures + 1;
        const opens = before.state === 'half_open' || (before.state === 'closed' && failures >= threshold);
        await trx
          .updateTable('integration_circuits')
          .set({
            failures,
            last_error_code: code,
            updated_at: now,
            ...(opens ? { state: 'open', opened_at: before.state === 'closed' ? now : sql<Date>`opened_at`, probe_at: new Date(now.getTime() + cooldownMs) } : {}),
          })
          .where('config_id', '=', key.config_id)
          .where('direction', '=', key.direction)
          .execute();
        if (opens && before.state === 'closed') await announce(trx, 'open', code);
        if (opens) return { state: 'open' as const, probeAt: new Date(now.getTime() + cooldownMs) };
        const after = await trx.selectFrom('integration_circuits').select(['state', 'probe_at']).where('config_id', '=', key.config_id).where('direction', '=', key.direction).executeTakeFirstOrThrow();
        return { state: after.state, probeAt: after.probe_at };
      });
    },

    async state() {
      const row = await options.db.selectFrom('integration_circuits').select('state').where('config_id', '=', key.config_id).where('direction', '=', key.direction).executeTakeFirst();
      return row?.state ?? 'closed';
    },
  };
}
