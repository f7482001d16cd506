/**
 * How a chat surface delivers a routed notification. Surfaces register one each (Slack, Teams, email); the
 * `notify.deliver` job calls the one for the notification's surface. Expected failures are values.
 */
import type { Surface, TargetKind } from '../db/schema.ts';
import type { Result } from '../domain/result.ts';
import type { Message } from './message.ts';

export interface Notifier {
  surface: Surface;
  deliver(input: { notificationId: string; kind: TargetKind; target: string; message: Message }): Promise<Result<{ ref?: string }>>;
}
