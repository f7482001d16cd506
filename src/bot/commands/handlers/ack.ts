/** `/projectx ack <incident>`: acknowledge; idempotent (a second ack says who was first). */
import { formatTime } from '../../../domain/approvals.ts';
import { acknowledgeIncident } from '../../../domain/incidents.ts';
import { type Reply, okReply, refusedReply, textMessage } from '../../message.ts';
import type { CommandContext } from '../context.ts';

export async function ack(ctx: CommandContext, command: { number: string }): Promise<Reply> {
  const result = await acknowledgeIncident(ctx.domain, ctx.actor, command.number);
  if (!result.ok) return refusedReply(result.refusal.code, result.refusal.message);
  const { incident, acknowledgedNow, acknowledgedByName } = result.value;
  const at = incident.acknowledgedAt ? formatTime(incident.acknowledgedAt) : '';
  return okReply(
    textMessage(
      acknowledgedNow
        ? `You acknowledged ${incident.number} (P${incident.priority}) ${incident.shortDescription} at ${at}.`
        : `${incident.number} was already acknowledged by ${acknowledgedByName} at ${at}.`,
    ),
  );
}
