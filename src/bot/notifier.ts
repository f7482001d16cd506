/**
 * How a chat surface delivers a routed notification. Surfaces register one each (Slack, Teams, email); the
 * `notify.deliver` job calls the one for the notification's surface. Expected failures are values.
 */
import type { Surface, TargetKind } from '../db/schema.ts';
import type { Result } from '../domain/result.ts';
import type { Message } from './message.ts';

export interface Notifier {
  surface: Surface;
  /**
   * Delivers one notification. A refusal with `retryAfterSeconds` is retried then (rate limits, pacing); one
   * marked `permanent` is not retried (unknown channel, no chat identity); any other is retried with backoff.
   */
  deliver(input: { notificationId: string; kind: TargetKind; target: string; message: Message; subject?: { kind: string; id: string } | undefined }): Promise<Result<{ ref?: string }>>;
}

/** A surface that re-renders the messages it posted about a task or incident when it changes (Slack, Teams). */
export interface Rerenderer {
  surface: string;
  /** Updates every message this surface posted about the subject; returns how many. */
  rerender(subject: { kind: string; id: string }): Promise<Result<{ updated: number }>>;
}
