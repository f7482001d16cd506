/**
 * Our Bolt `Receiver`: a Hono route owns the HTTP request (bolt-js's HTTPReceiver does the same over
 * node:http). It verifies the signature on the raw body, answers `url_verification`, checks the payload's shape
 * (src/bot/slack/payloads.ts: a malformed request is refused, recorded with why, and never reaches Bolt),
 * records the delivery in `inbound_events` (unique per delivery id, so a retried event or a double click has no
 * second effect; response URLs sealed, src/bot/slack/sealing.ts), hands the body to Bolt with an `ack` that
 * answers this very request, and answers with whatever was acked.
 *
 * How processing can end, and what Slack is told: acked (the ack's body, 200); not acked in time (200, nothing);
 * the workspace has no installation or is not allowed (a command: 200 with an explanation; anything else: 200,
 * nothing to show); a listener failed because the database or queue is unavailable (503: Slack retries an
 * event, a person tries again); a listener failed otherwise (a command: 200 with an explanation; an
 * interaction: 400; the delivery is recorded as failed for `projectx slack dead list|replay`). No signed
 * request is answered 500.
 *
 * Deliveries left 'received' by a process that died between recording and processing are redelivered by the
 * sweep (`redeliver`, run by the web role every few seconds): each is claimed by one process and handed to
 * Bolt again, at most MAX_ATTEMPTS times, then left failed for an operator.
 */
import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import type { Context } from 'hono';
import { Counter } from 'prom-client';
import { type Insertable, type QueryCreator, sql } from 'kysely';
import { fetch } from 'undici';
import type { Clock } from '../../clock.ts';
import { Batcher } from '../../db/batcher.ts';
import { STALLED_AFTER_MS } from '../../db/inbound-review.ts';
import type { Database, InboundEventStatus, InboundEventsTable } from '../../db/schema.ts';
import type { Db } from '../../db/database.ts';
import { isTransient } from '../../db/connect.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
import { errorBody } from '../../http/errors.ts';
import { type Logger, currentContext } from '../../logger.ts';
import { type SignatureFailure, signatureFailureResponse } from '../../http/signature-failures.ts';
import type { Metrics } from '../../metrics.ts';
import { WORKSPACE_NOT_ALLOWED } from './allowlist.ts';
import { ephemeral } from './block-kit.ts';
import { type Delivery, type RefusalAnswer, checkPayload } from './payloads.ts';
import { sealBody, unsealBody } from './sealing.ts';
import { verifySlackSignature } from './signature.ts';

export interface SlackReceiverOptions {
  signingSecret: string;
  db: Db;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Seals response URLs at rest; without it they are not stored. */
  keyring?: Keyring | undefined;
  /** Where a redelivered command's answer may be posted besides hooks.slack.com (tests: the fake Slack). */
  apiUrl?: string | undefined;
  /** How long to wait for a listener's ack before answering 200 with nothing (Slack allows 3 s). */
  ackTimeoutMs?: number;
  /** How long a delivery may stay 'received' before the sweep takes it for a process that died (default 60 s). */
  redeliverAfterMs?: number;
}

type Body = Record<string, unknown>;
type InboundRow = Insertable<InboundEventsTable>;
/** An ending: processed, or failed or refused with why. */
type Ending = { status: 'processed' } | { status: Extract<InboundEventStatus, 'failed' | 'quarantined'>; error: { code: string; message: string } };
/** A new delivery to record, or how an earlier one ended. */
type WriteOp = { kind: 'record'; row: InboundRow } | { kind: 'settle'; id: string; ending: Ending };

/** Handed to Bolt with each request: listeners find the delivery's id in their `context`. */
export interface SlackDeliveryContext {
  inboundId: string | undefined;
}

export type DispatchOutcome =
  | { kind: 'answered'; response?: unknown }
  | { kind: 'duplicate' }
  | { kind: 'refused'; code: string; message: string; answer: RefusalAnswer }
  | { kind: 'failed'; answer: RefusalAnswer; inboundId: string | undefined }
  | { kind: 'unavailable' | 'not_ready' };

/** How many times a delivery is handed to the listeners before it is left failed for an operator. */
export const MAX_ATTEMPTS = 3;
/** How often writing a delivery's outcome is tried (backing off from 1 s to 30 s: about a minute and a half). */
const SETTLE_ATTEMPTS = 7;

/** The Bolt error code of a failed `authorize` (no installation, or a workspace that is not allowed). */
const AUTHORIZATION_ERROR = 'slack_bolt_authorization_error';

export class HonoSlackReceiver implements Receiver {
  readonly #options: SlackReceiverOptions;
  #app: App | undefined;
  readonly #failures: Counter<'reason'>;
  readonly #duplicates: Counter<'kind'>;
  readonly #refused: Counter<'kind' | 'code'>;
  readonly #redelivered: Counter<'outcome'>;

  /**
   * Deliveries are recorded in batches (group commit): one statement and one commit for all that arrive
   * together. The outcomes of earlier deliveries ride along in the same statement (an UPDATE in a CTE), so
   * under load recording how a delivery ended costs no commit of its own; when nothing else arrives, an
   * outcome is written by itself at once. A batch that fails is written again one by one (the Batcher), so
   * one bad row fails only its own request.
   */
  readonly #writer: Batcher<WriteOp, string | undefined>;
  /** Outcomes not yet written: processing still running, or its outcome on its way to the writer. */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: SlackReceiverOptions) {
    this.#options = options;
    this.#writer = new Batcher((ops) => this.#write(ops), { onBatchFailure: (error, items) => options.logger.warn({ err: error, items }, 'slack delivery batch failed; writing it one by one') });
    this.#failures = new Counter({ name: 'slack_signature_failures_total', help: 'Slack requests refused by signature check, by reason', labelNames: ['reason'], registers: [options.metrics.registry] });
    this.#duplicates = new Counter({ name: 'slack_duplicate_deliveries_total', help: 'Slack deliveries recognised as repeats and not processed again', labelNames: ['kind'], registers: [options.metrics.registry] });
    this.#refused = new Counter({ name: 'slack_refused_deliveries_total', help: 'Signed Slack requests refused before processing (malformed, unsupported, workspace not allowed), by kind and code', labelNames: ['kind', 'code'], registers: [options.metrics.registry] });
    this.#redelivered = new Counter({ name: 'slack_redeliveries_total', help: 'Slack deliveries left unprocessed by a process that stopped, taken by the sweep: redelivered, already done (its effect was audited), or given up (failed)', labelNames: ['outcome'], registers: [options.metrics.registry] });
  }

  init(app: App): void {
    this.#app = app;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** The Hono handler for `POST /slack/events`. */
  async handle(c: Context): Promise<Response> {
    const rawBody = new Uint8Array(await c.req.arrayBuffer());
    const verified = verifySlackSignature({
      signingSecret: this.#options.signingSecret,
      timestamp: c.req.header('x-slack-request-timestamp'),
      signature: c.req.header('x-slack-signature'),
      rawBody,
      now: this.#options.clock.now(),
    });
    if (!verified.ok) return this.#refuse(c, verified.reason);

    const body = parseBody(c.req.header('content-type') ?? '', rawBody);
    if (!body) return c.json(errorBody('malformed_body', 'the request body is not a Slack payload'), 400);
    if (body.type === 'url_verification') return c.json({ challenge: typeof body.challenge === 'string' ? body.challenge.slice(0, 500) : '' });
    if (body.ssl_check === '1') return c.body(null, 200);

    const retryNum = Number(c.req.header('x-slack-retry-num') ?? Number.NaN);
    const retryReason = c.req.header('x-slack-retry-reason');
    let outcome: DispatchOutcome;
    try {
      outcome = await this.dispatch(body, rawBody, { ...(Number.isFinite(retryNum) ? { retryNum } : {}), ...(retryReason ? { retryReason: retryReason.slice(0, 100) } : {}) });
    } catch (error) {
      // Not recorded (the database refused or is away): nothing was committed, so nothing is acknowledged.
      this.#options.logger.error({ err: error }, 'slack delivery could not be recorded');
      c.header('Retry-After', '5');
      return c.json(errorBody('storage_unavailable', 'the request could not be recorded; it can be retried'), 503);
    }
    switch (outcome.kind) {
      case 'not_ready':
        return c.json(errorBody('not_ready', 'the Slack app is not initialised'), 503);
      case 'unavailable':
        c.header('Retry-After', '5');
        return c.json(errorBody('processing_unavailable', 'the request could not be processed right now; it can be retried'), 503);
      case 'refused':
        return answerRefusal(c, outcome.answer, outcome.code, outcome.message);
      case 'failed':
        return answerRefusal(c, outcome.answer, 'processing_failed', `ProjectX could not process this request; it was recorded for an operator (reference ${outcome.inboundId ?? 'none'}).`);
      case 'duplicate':
        return c.body(null, 200);
      case 'answered': {
        const response = outcome.response;
        if (response === undefined || response === '') return c.body(null, 200);
        if (typeof response === 'string') return c.text(response, 200);
        return c.json(response as object, 200);
      }
    }
  }

  /**
   * Transport-independent: checks and records the delivery (a repeat is answered with nothing and not
   * processed again), hands it to Bolt, and resolves with what the listener acked (or nothing, after the ack
   * timeout). The HTTP route and the Socket Mode client both come through here. Rejects only when the
   * delivery could not be recorded.
   */
  async dispatch(body: Body, rawBody: Uint8Array, retry: { retryNum?: number; retryReason?: string } = {}): Promise<DispatchOutcome> {
    const { logger } = this.#options;
    const checked = checkPayload(body, rawBody);
    if (!checked.ok) {
      const { delivery, refusal } = checked;
      this.#refused.inc({ kind: delivery.kind, code: refusal.code });
      logger.warn({ kind: delivery.kind, code: refusal.code, reason: refusal.message }, 'slack request refused: malformed payload');
      // A body that cannot be stored (NUL, broken Unicode, nested past reason) is kept as its size only.
      const kept = refusal.code === 'unstorable_text' ? { unstorable: true, bytes: rawBody.length } : body;
      // Recording a refusal is for operators; the answer does not wait on it (nothing is accepted).
      await this.#writer.add({ kind: 'record', row: this.#row(delivery, { status: 'quarantined', error: { code: refusal.code, message: refusal.message } }, kept, retry) }).catch((error: unknown) => logger.warn({ err: error, kind: delivery.kind }, 'could not record a refused slack request'));
      return { kind: 'refused', code: refusal.code, message: refusal.message, answer: refusal.answer };
    }
    if (checked.skip === 'rate_limited') {
      logger.warn({ team: body.team_id, minute: body.minute_rate_limited }, 'slack is dropping our events for a minute (app_rate_limited)');
      return { kind: 'answered' };
    }
    const delivery = checked.delivery;
    let inboundId: string | undefined;
    if (delivery) {
      inboundId = await this.#writer.add({ kind: 'record', row: this.#row(delivery, undefined, body, retry) });
      if (!inboundId) {
        this.#duplicates.inc({ kind: delivery.kind });
        logger.info({ kind: delivery.kind, retryNum: retry.retryNum }, 'slack delivery already received; not processed again');
        return { kind: 'duplicate' };
      }
    }
    return (await this.#process(body, delivery, inboundId, retry, undefined)).outcome;
  }

  /**
   * Hands a checked, recorded delivery to Bolt; `onAck` (a redelivery) takes the acked answer instead of a
   * request. Resolves with how to answer, as soon as that is known, and `settled`: processing ended and its
   * outcome is written.
   */
  async #process(body: Body, delivery: Delivery | undefined, inboundId: string | undefined, retry: { retryNum?: number; retryReason?: string }, onAck: ((response: unknown) => void) | undefined): Promise<{ outcome: DispatchOutcome; settled: Promise<void> }> {
    const { logger } = this.#options;
    const app = this.#app;
    if (!app) return { outcome: { kind: 'not_ready' }, settled: Promise.resolve() };
    let settle: (response: unknown) => void = () => {};
    const acked = new Promise<unknown>((resolve) => (settle = resolve));
    let ackCalled = false;
    const context: SlackDeliveryContext = { inboundId };
    const event: ReceiverEvent = {
      body,
      ack: (response?: unknown) => {
        ackCalled = true;
        settle(response);
        onAck?.(response);
        return Promise.resolve();
      },
      customProperties: { projectx: context },
      ...(retry.retryNum !== undefined ? { retryNum: retry.retryNum } : {}),
      ...(retry.retryReason ? { retryReason: retry.retryReason } : {}),
    };
    const processing = app.processEvent(event).then(
      () => ({ ok: true as const }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    // Record how processing ended, off the request path.
    const ending = processing.then((outcome): Ending => {
      if (outcome.ok) return { status: 'processed' };
      const code = (outcome.error as { code?: unknown } | null)?.code;
      if (code === AUTHORIZATION_ERROR) {
        // Bolt wraps what `authorize` threw: ours says whether the workspace is not allowed or not installed.
        const refused = (outcome.error as { original?: { code?: unknown } }).original?.code === WORKSPACE_NOT_ALLOWED ? 'workspace_not_allowed' : 'workspace_not_installed';
        this.#refused.inc({ kind: delivery?.kind ?? 'unknown', code: refused });
        logger.warn({ kind: delivery?.kind, code: refused }, 'slack request refused: its workspace is not served');
        return { status: 'quarantined', error: { code: refused, message: errorMessage((outcome.error as { original?: unknown }).original ?? outcome.error) } };
      }
      logger.error({ err: outcome.error, kind: delivery?.kind }, 'slack listener failed');
      return { status: 'failed', error: { code: isTransient(outcome.error) ? 'processing_unavailable' : 'processing_failed', message: errorMessage(outcome.error) } };
    });
    const settled = ending.then((end) => this.#settleInbound(inboundId, end));
    // Processing may go on after the ack: flush() waits for it to be settled too.
    this.#inFlight.add(settled);
    void settled.finally(() => this.#inFlight.delete(settled));
    const outcome = await this.#answer(acked, ending, () => ackCalled, delivery, inboundId);
    return { outcome, settled };
  }

  /** What to answer: the ack, or nothing when processing ended without one or took too long, or the failure. */
  async #answer(acked: Promise<unknown>, ending: Promise<Ending>, ackCalled: () => boolean, delivery: Delivery | undefined, inboundId: string | undefined): Promise<DispatchOutcome> {
    const answer: RefusalAnswer = delivery?.kind === 'slash_command' ? 'ephemeral' : delivery?.kind === 'event_callback' ? 'empty' : 'bad_request';
    const NO_ACK = Symbol('no-ack');
    const TIMED_OUT = Symbol('timed-out');
    let timer: NodeJS.Timeout | undefined;
    const response = await Promise.race([
      acked,
      ending.then((end) => (end.status === 'processed' ? NO_ACK : end)),
      new Promise((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), this.#options.ackTimeoutMs ?? 2500))),
    ]);
    clearTimeout(timer);
    if (response === NO_ACK) return { kind: 'answered' };
    // A form answered 200 closes: say nothing was decided yet, so the person submits again (a repeat of a form
    // that did go through is answered as a duplicate, and closes).
    if (response === TIMED_OUT) return delivery?.kind === 'view_submission' ? { kind: 'unavailable' } : { kind: 'answered' };
    const end = response as Ending | undefined;
    if (!ackCalled() && end && typeof end === 'object' && 'status' in end && (end.status === 'failed' || end.status === 'quarantined')) {
      // Ended before acknowledging.
      if (end.error.code === 'workspace_not_installed' || end.error.code === 'workspace_not_allowed') {
        const message = end.error.code === 'workspace_not_allowed' ? 'This Slack workspace is not allowed to use ProjectX. Ask a ProjectX admin for an install link.' : 'This Slack workspace is not connected to ProjectX. Ask a ProjectX admin to install the app for it.';
        return { kind: 'refused', code: end.error.code, message, answer: answer === 'bad_request' ? 'empty' : answer };
      }
      if (end.error.code === 'processing_unavailable') return { kind: 'unavailable' };
      return { kind: 'failed', answer, inboundId };
    }
    return { kind: 'answered', ...(response === undefined ? {} : { response }) };
  }

  /**
   * The sweep: deliveries left 'received' for longer than `redeliverAfterMs` (their process stopped between
   * recording and processing) but for less than STALLED_AFTER_MS (older ones are dead: an operator decides),
   * and those an operator handed back (`slack dead replay`: attempts 0), are claimed one at a time (one process
   * each: `FOR UPDATE SKIP LOCKED`; the claim moves `received_at` on) and handed to Bolt again, the next one
   * only once this one's outcome is written; an answer a listener acks for a command is posted to the command's
   * response URL while it lives. After MAX_ATTEMPTS a delivery is left failed for an operator. Resolves with
   * how many were redelivered.
   */
  async redeliver(limit = 50): Promise<number> {
    const { db, clock, logger, keyring } = this.#options;
    let redelivered = 0;
    for (let taken = 0; taken < limit; taken++) {
      const now = clock.now();
      const cutoff = new Date(now.getTime() - (this.#options.redeliverAfterMs ?? 60_000));
      const stalled = new Date(now.getTime() - STALLED_AFTER_MS);
      const claimed = await sql<{ id: string; delivery_id: string; kind: string; body: Buffer; sealed: unknown; attempts: number; correlation_id: string | null }>`
        update inbound_events set received_at = ${now}, attempts = attempts + 1
         where id = (select id from inbound_events
                      where source = 'slack' and status = 'received' and ((received_at < ${cutoff} and received_at > ${stalled}) or attempts = 0)
                      order by received_at limit 1 for update skip locked)
        returning id, delivery_id, kind, body, sealed, attempts, correlation_id`.execute(db);
      const row = claimed.rows[0];
      if (!row) break;
      if (row.attempts > MAX_ATTEMPTS) {
        this.#redelivered.inc({ outcome: 'gave_up' });
        logger.error({ inboundId: row.id, kind: row.kind, attempts: row.attempts - 1 }, 'slack delivery still unprocessed after its attempts; left for an operator (projectx slack dead list)');
        await this.#settleInbound(row.id, { status: 'failed', error: { code: 'not_processed', message: `still unprocessed after ${MAX_ATTEMPTS} attempts (the process handling it stopped each time)` } });
        continue;
      }
      // Its process stopped after the effect committed but before the delivery was marked: running it again would
      // act twice (a second decision is refused, and audited). An operator's replay (attempts 0) always runs.
      if (row.attempts > 1 && row.correlation_id && (await hadAuditedEffect(db, row.correlation_id))) {
        this.#redelivered.inc({ outcome: 'already_done' });
        logger.warn({ inboundId: row.id, kind: row.kind }, 'a slack delivery its process left unmarked had already had its effect (audited): marked processed, not run again');
        await this.#settleInbound(row.id, { status: 'processed' });
        continue;
      }
      let body: Body;
      try {
        body = unsealBody(row.body, row.sealed, row.delivery_id, keyring);
      } catch (error) {
        await this.#settleInbound(row.id, { status: 'failed', error: { code: 'unreadable_body', message: errorMessage(error) } });
        continue;
      }
      this.#redelivered.inc({ outcome: 'redelivered' });
      logger.warn({ inboundId: row.id, kind: row.kind, attempt: row.attempts }, 'redelivering a slack delivery its process left unprocessed');
      const responseUrl = typeof body.response_url === 'string' ? body.response_url : undefined;
      const { settled } = await this.#process(body, { id: row.delivery_id, kind: row.kind }, row.id, { retryNum: row.attempts - 1, retryReason: 'projectx_redelivery' }, (response) => {
        if (row.kind === 'slash_command' && responseUrl && response !== undefined && response !== '') void this.#respondLate(responseUrl, response);
      });
      await settled;
      redelivered++;
    }
    return redelivered;
  }

  /** Posts a redelivered command's answer to its response URL (only Slack's, or the configured API host's). */
  async #respondLate(responseUrl: string, response: unknown): Promise<void> {
    if (!isSlackResponseUrl(responseUrl, this.#options.apiUrl)) return;
    const message = typeof response === 'string' ? ephemeral({ text: response, blocks: [{ type: 'section', text: response }] }) : { response_type: 'ephemeral', ...(response as object) };
    await fetch(responseUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(message), signal: AbortSignal.timeout(10_000) }).then(
      (res) => res.body?.cancel(),
      (error: unknown) => this.#options.logger.warn({ err: error }, 'could not post a redelivered command\'s answer'),
    );
  }

  #row(delivery: Delivery, ending: Ending | undefined, body: Body, retry: { retryNum?: number; retryReason?: string }): InboundRow {
    const { clock, keyring } = this.#options;
    const sealed = sealBody(body, delivery.id, keyring);
    const now = clock.now();
    return {
      source: 'slack',
      delivery_id: delivery.id,
      kind: delivery.kind,
      body: sealed.body,
      sealed: sealed.sealed,
      headers: JSON.stringify(retry.retryNum !== undefined ? { 'x-slack-retry-num': String(retry.retryNum), 'x-slack-retry-reason': retry.retryReason ?? '' } : {}),
      received_at: now,
      // The request's: its effects' audit rows carry the same, which is how the sweep tells a delivery whose
      // process stopped after its effect committed from one that stopped before.
      correlation_id: currentContext().correlationId ?? null,
      ...(ending ? { status: ending.status, processed_at: now, error: 'error' in ending ? JSON.stringify(ending.error) : null } : {}),
    };
  }

  #refuse(c: Context, reason: SignatureFailure): Response {
    // One code for the metric, the log and the answer (a stale request says so); the signature goes nowhere.
    this.#failures.inc({ reason });
    this.#options.logger.warn({ reason, path: c.req.path }, 'slack request refused: signature check failed');
    return signatureFailureResponse(c, reason);
  }

  /**
   * Writes how a delivery ended, retrying for about a minute while the database is away: an outcome left
   * unwritten would leave a processed delivery 'received', and the sweep would run it again.
   */
  async #settleInbound(id: string | undefined, ending: Ending): Promise<void> {
    if (!id) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#writer.add({ kind: 'settle', id, ending });
        return;
      } catch (failure) {
        if (attempt >= SETTLE_ATTEMPTS) {
          this.#options.logger.error({ err: failure, inboundId: id, status: ending.status }, 'could not record the outcome of a slack delivery; the redelivery sweep may process it again');
          return;
        }
        this.#options.logger.warn({ err: failure, inboundId: id, attempt }, 'could not record the outcome of a slack delivery; trying again');
        await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** attempt)).unref());
      }
    }
  }

  /**
   * One statement for the batch: the new deliveries are inserted and, in a CTE, the earlier ones whose
   * processing succeeded are marked processed. A delivery id already received gets no id (a repeat), unless
   * its earlier processing failed: then this delivery takes the row over and is processed again (Slack
   * retries a failed event; a person resubmits a form that answered with an error). Two identical deliveries
   * in one batch: the first wins. Failures (rare) are written first, each with its error. Safe to run again
   * with the same ops (the Batcher does, one by one, after a failed batch).
   *
   * The CTE and the INSERT never touch the same row: a row being marked processed is 'received', and the
   * INSERT only takes over rows that were 'failed' when the statement began.
   */
  async #write(ops: readonly WriteOp[]): Promise<(string | undefined)[]> {
    const { db, clock } = this.#options;
    const now = clock.now();
    const rows = ops.flatMap((op) => (op.kind === 'record' ? [op.row] : []));
    const processed = ops.flatMap((op) => (op.kind === 'settle' && op.ending.status === 'processed' ? [op.id] : []));
    for (const op of ops) {
      if (op.kind === 'settle' && op.ending.status !== 'processed') {
        await db.updateTable('inbound_events').set({ status: op.ending.status, processed_at: now, error: JSON.stringify(op.ending.error) }).where('id', '=', op.id).where('status', '=', 'received').execute();
      }
    }
    const markProcessed = (qc: QueryCreator<Database>) => qc.updateTable('inbound_events').set({ status: 'processed', processed_at: now }).where('id', 'in', processed).where('status', '=', 'received');
    if (rows.length === 0) {
      if (processed.length > 0) await markProcessed(db).execute();
      return ops.map(() => undefined);
    }
    const seen = new Set<string>();
    const unique = rows.filter((row) => (seen.has(row.delivery_id) ? false : (seen.add(row.delivery_id), true)));
    const insert = (processed.length > 0 ? db.with('settled', (trx) => markProcessed(trx)) : db)
      .insertInto('inbound_events')
      .values(unique)
      .onConflict((oc) =>
        oc
          .constraint('inbound_events_source_delivery_id_key')
          .doUpdateSet((eb) => ({
            status: eb.ref('excluded.status'),
            error: eb.ref('excluded.error'),
            processed_at: eb.ref('excluded.processed_at'),
            received_at: eb.ref('excluded.received_at'),
            body: eb.ref('excluded.body'),
            sealed: eb.ref('excluded.sealed'),
            headers: eb.ref('excluded.headers'),
            correlation_id: eb.ref('excluded.correlation_id'),
            attempts: 1,
          }))
          .where('inbound_events.status', '=', 'failed'),
      )
      .returning(['id', 'delivery_id', 'status']);
    const inserted = await insert.execute();
    // A refused delivery is recorded, but nothing processes it: its caller needs no id.
    const ids = new Map(inserted.map((row) => [row.delivery_id, row.status === 'received' ? row.id : undefined]));
    return ops.map((op) => {
      if (op.kind !== 'record') return undefined;
      const id = ids.get(op.row.delivery_id);
      ids.delete(op.row.delivery_id);
      return id;
    });
  }

  /**
   * Waits until every delivery handed to processing so far has ended and its outcome is written (shutdown,
   * tests): a listener may still be working after it acked, and its outcome is added to the writer only then.
   */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
    await this.#writer.flush();
  }
}

/** Whether the request with this correlation id committed anything audited (every action and refusal is). */
async function hadAuditedEffect(db: Db, correlationId: string): Promise<boolean> {
  const { rows } = await sql<{ found: boolean }>`select exists (select 1 from audit_log where correlation_id = ${correlationId}) as found`.execute(db);
  return rows[0]?.found === true;
}

/** A refusal as Slack expects it: a command gets an ephemeral message, an event 200, an interaction a 400. */
function answerRefusal(c: Context, answer: RefusalAnswer, code: string, message: string): Response {
  if (answer === 'ephemeral') return c.json(ephemeral({ text: message, blocks: [{ type: 'section', text: message }] }), 200);
  if (answer === 'empty') return c.body(null, 200);
  return c.json(errorBody(code, message), 400);
}

function errorMessage(error: unknown): string {
  return (error instanceof Error ? error.message : 'listener failed').slice(0, 500).toWellFormed();
}

/** A response URL we may post to: Slack's hooks host over HTTPS, or the configured API host (tests). */
export function isSlackResponseUrl(url: string, apiUrl: string | undefined): boolean {
  if (!URL.canParse(url)) return false;
  const target = new URL(url);
  if (target.protocol === 'https:' && target.host === 'hooks.slack.com') return true;
  return apiUrl !== undefined && URL.canParse(apiUrl) && new URL(apiUrl).origin === target.origin;
}

/** Slack sends form bodies (commands; interactions as a `payload` field) or JSON (Events API). */
export function parseBody(contentType: string, rawBody: Uint8Array): Body | undefined {
  const text = Buffer.from(rawBody).toString('utf8');
  try {
    if (contentType.includes('application/json')) {
      const parsed: unknown = JSON.parse(text);
      return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Body) : undefined;
    }
    if (contentType.includes('application/x-www-form-urlencoded')) {
      const form = Object.fromEntries(new URLSearchParams(text));
      if (typeof form.payload === 'string') {
        const parsed: unknown = JSON.parse(form.payload);
        return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Body) : undefined;
      }
      return form;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
