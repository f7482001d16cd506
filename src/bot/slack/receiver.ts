/**
 * Our Bolt `Receiver`: a Hono route owns the HTTP request (bolt-js's HTTPReceiver does the same over
 * node:http). It verifies the signature on the raw body, answers `url_verification`, records the delivery in
 * `inbound_events` (unique per delivery id, so a retried event or a double click has no second effect), hands
 * the body to Bolt with an `ack` that answers this very request, and answers with whatever was acked.
 */
import { createHash } from 'node:crypto';
import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import type { Context } from 'hono';
import { Counter } from 'prom-client';
import type { Insertable, QueryCreator } from 'kysely';
import type { Clock } from '../../clock.ts';
import { Batcher } from '../../db/batcher.ts';
import type { Database, InboundEventsTable } from '../../db/schema.ts';
import type { Db } from '../../db/database.ts';
import { errorBody } from '../../http/errors.ts';
import type { Logger } from '../../logger.ts';
import { type SignatureFailure, signatureFailureResponse } from '../../http/signature-failures.ts';
import type { Metrics } from '../../metrics.ts';
import { verifySlackSignature } from './signature.ts';

export interface SlackReceiverOptions {
  signingSecret: string;
  db: Db;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** How long to wait for a listener's ack before answering 200 with nothing (Slack allows 3 s). */
  ackTimeoutMs?: number;
}

type Body = Record<string, unknown>;
type InboundRow = Insertable<InboundEventsTable>;
/** A new delivery to record, or how an earlier one ended (no error: processed). */
type WriteOp = { kind: 'record'; row: InboundRow } | { kind: 'settle'; id: string; error?: string };

/** The delivery id Slack gives (or that identifies a repeat), and what kind of request it is. */
export function deliveryOf(body: Body, rawBody: Uint8Array): { id: string; kind: string } | undefined {
  const type = typeof body.type === 'string' ? body.type : undefined;
  const str = (value: unknown) => (typeof value === 'string' ? value : '');
  if (type === 'event_callback') return { id: `event:${str(body.event_id)}`, kind: 'event_callback' };
  if (type === 'block_suggestion') return undefined; // a read; Slack does not retry it
  if (type === 'block_actions') {
    const action = (Array.isArray(body.actions) ? body.actions[0] : undefined) as Body | undefined;
    const team = str((body.team as Body | undefined)?.id);
    const user = str((body.user as Body | undefined)?.id);
    return { id: `action:${team}:${user}:${str(action?.action_ts)}:${str(action?.action_id)}`, kind: 'block_actions' };
  }
  if (type === 'view_submission' || type === 'view_closed') {
    const view = body.view as Body | undefined;
    return { id: `view:${str(view?.id)}:${str(view?.hash)}:${type}`, kind: type };
  }
  if (typeof body.command === 'string') {
    // trigger_id is unique per invocation; the body hash covers the rare request without one.
    return { id: `command:${str(body.trigger_id) || createHash('sha256').update(rawBody).digest('hex')}`, kind: 'slash_command' };
  }
  return { id: `body:${createHash('sha256').update(rawBody).digest('hex')}`, kind: type ?? 'unknown' };
}

export class HonoSlackReceiver implements Receiver {
  readonly #options: SlackReceiverOptions;
  #app: App | undefined;
  readonly #failures: Counter<'reason'>;
  readonly #duplicates: Counter<'kind'>;

  /**
   * Deliveries are recorded in batches (group commit): one statement and one commit for all that arrive
   * together. The outcomes of earlier deliveries ride along in the same statement (an UPDATE in a CTE), so
   * under load recording how a delivery ended costs no commit of its own; when nothing else arrives, an
   * outcome is written by itself at once.
   */
  readonly #writer: Batcher<WriteOp, string | undefined>;

  constructor(options: SlackReceiverOptions) {
    this.#options = options;
    this.#writer = new Batcher((ops) => this.#write(ops));
    this.#failures = new Counter({ name: 'slack_signature_failures_total', help: 'Slack requests refused by signature check, by reason', labelNames: ['reason'], registers: [options.metrics.registry] });
    this.#duplicates = new Counter({ name: 'slack_duplicate_deliveries_total', help: 'Slack deliveries recognised as repeats and not processed again', labelNames: ['kind'], registers: [options.metrics.registry] });
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
    if (body.type === 'url_verification') return c.json({ challenge: typeof body.challenge === 'string' ? body.challenge : '' });
    if (body.ssl_check === '1') return c.body(null, 200);

    const retryNum = Number(c.req.header('x-slack-retry-num') ?? Number.NaN);
    const retryReason = c.req.header('x-slack-retry-reason');
    const outcome = await this.dispatch(body, rawBody, { ...(Number.isFinite(retryNum) ? { retryNum } : {}), ...(retryReason ? { retryReason } : {}) });
    if (outcome.kind === 'not_ready') return c.json(errorBody('not_ready', 'the Slack app is not initialised'), 503);
    if (outcome.kind === 'failed') return c.json(errorBody('processing_failed', 'the request could not be processed; it can be retried'), 500);
    const response = 'response' in outcome ? outcome.response : undefined;
    if (response === undefined || response === '') return c.body(null, 200);
    if (typeof response === 'string') return c.text(response, 200);
    return c.json(response as object, 200);
  }

  /**
   * Transport-independent: records the delivery (a repeat is answered with nothing and not processed again),
   * hands it to Bolt, and resolves with what the listener acked (or nothing, after the ack timeout). The HTTP
   * route and the Socket Mode client both come through here.
   */
  async dispatch(body: Body, rawBody: Uint8Array, retry: { retryNum?: number; retryReason?: string } = {}): Promise<{ kind: 'answered' | 'duplicate'; response?: unknown } | { kind: 'not_ready' | 'failed' }> {
    const { logger } = this.#options;
    const delivery = deliveryOf(body, rawBody);
    let inboundId: string | undefined;
    if (delivery) {
      inboundId = await this.#writer.add({
        kind: 'record',
        row: {
          source: 'slack',
          delivery_id: delivery.id.slice(0, 500),
          kind: delivery.kind,
          body: Buffer.from(rawBody),
          headers: JSON.stringify(retry.retryNum !== undefined ? { 'x-slack-retry-num': String(retry.retryNum), 'x-slack-retry-reason': retry.retryReason ?? '' } : {}),
          received_at: this.#options.clock.now(),
        },
      });
      if (!inboundId) {
        this.#duplicates.inc({ kind: delivery.kind });
        logger.info({ kind: delivery.kind, retryNum: retry.retryNum }, 'slack delivery already received; not processed again');
        return { kind: 'duplicate' };
      }
    }

    const app = this.#app;
    if (!app) return { kind: 'not_ready' };
    let settle: (response: unknown) => void = () => {};
    const acked = new Promise<unknown>((resolve) => (settle = resolve));
    const event: ReceiverEvent = {
      body,
      ack: (response?: unknown) => {
        settle(response);
        return Promise.resolve();
      },
      ...(retry.retryNum !== undefined ? { retryNum: retry.retryNum } : {}),
      ...(retry.retryReason ? { retryReason: retry.retryReason } : {}),
    };
    const processing = app.processEvent(event).then(
      () => ({ ok: true as const }),
      (error: unknown) => {
        logger.error({ err: error, kind: delivery?.kind }, 'slack listener failed');
        return { ok: false as const, error };
      },
    );
    // Record how processing ended, off the request path.
    void processing.then((outcome) => this.#settleInbound(inboundId, outcome));

    const NO_ACK = Symbol('no-ack');
    const FAILED = Symbol('failed');
    let timer: NodeJS.Timeout | undefined;
    const response = await Promise.race([
      acked,
      processing.then((outcome) => (outcome.ok ? NO_ACK : FAILED)),
      new Promise((resolve) => (timer = setTimeout(() => resolve(NO_ACK), this.#options.ackTimeoutMs ?? 2500))),
    ]);
    clearTimeout(timer);
    // Failed before acknowledging: say so (Slack retries an event; a form shows an error to resubmit), never 200.
    if (response === FAILED) return { kind: 'failed' };
    return { kind: 'answered', ...(response === NO_ACK ? {} : { response }) };
  }

  #refuse(c: Context, reason: SignatureFailure): Response {
    // One code for the metric, the log and the answer (a stale request says so); the signature goes nowhere.
    this.#failures.inc({ reason });
    this.#options.logger.warn({ reason, path: c.req.path }, 'slack request refused: signature check failed');
    return signatureFailureResponse(c, reason);
  }

  async #settleInbound(id: string | undefined, outcome: { ok: boolean; error?: unknown }): Promise<void> {
    if (!id) return;
    const error = outcome.ok ? undefined : outcome.error instanceof Error ? outcome.error.message : 'listener failed';
    await this.#writer.add(error === undefined ? { kind: 'settle', id } : { kind: 'settle', id, error }).catch((failure: unknown) => this.#options.logger.warn({ err: failure }, 'could not record the outcome of a slack delivery'));
  }

  /**
   * One statement for the batch: the new deliveries are inserted and, in a CTE, the earlier ones whose
   * processing succeeded are marked processed. A delivery id already received gets no id (a repeat), unless
   * its earlier processing failed: then this delivery takes the row over and is processed again (Slack
   * retries a failed event; a person resubmits a form that answered with an error). Two identical deliveries
   * in one batch: the first wins. Failures (rare) are written first, each with its error.
   *
   * The CTE and the INSERT never touch the same row: a row being marked processed is 'received', and the
   * INSERT only takes over rows that were 'failed' when the statement began.
   */
  async #write(ops: readonly WriteOp[]): Promise<(string | undefined)[]> {
    const { db, clock } = this.#options;
    const now = clock.now();
    const rows = ops.flatMap((op) => (op.kind === 'record' ? [op.row] : []));
    const processed = ops.flatMap((op) => (op.kind === 'settle' && op.error === undefined ? [op.id] : []));
    for (const op of ops) {
      if (op.kind === 'settle' && op.error !== undefined) {
        await db.updateTable('inbound_events').set({ status: 'failed', processed_at: now, error: JSON.stringify({ message: op.error }) }).where('id', '=', op.id).execute();
      }
    }
    const markProcessed = (qc: QueryCreator<Database>) => qc.updateTable('inbound_events').set({ status: 'processed', processed_at: now }).where('id', 'in', processed);
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
          .doUpdateSet((eb) => ({ status: 'received', error: null, processed_at: null, received_at: eb.ref('excluded.received_at'), body: eb.ref('excluded.body'), headers: eb.ref('excluded.headers') }))
          .where('inbound_events.status', '=', 'failed'),
      )
      .returning(['id', 'delivery_id']);
    const inserted = await insert.execute();
    const ids = new Map(inserted.map((row) => [row.delivery_id, row.id]));
    return ops.map((op) => {
      if (op.kind !== 'record') return undefined;
      const id = ids.get(op.row.delivery_id);
      ids.delete(op.row.delivery_id);
      return id;
    });
  }

  /** Waits for every recorded outcome to be written (shutdown, tests). */
  flush(): Promise<void> {
    return this.#writer.flush();
  }
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
