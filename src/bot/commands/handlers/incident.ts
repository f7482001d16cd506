/** `/projectx incident <number>`: look one up. */
import { findIncidentsByNumber } from '../../../domain/incidents.ts';
import { type Reply, okReply, refusedReply } from '../../message.ts';
import { renderIncident } from '../../render.ts';
import type { CommandContext } from '../context.ts';

export async function incident(ctx: CommandContext, command: { number: string }): Promise<Reply> {
  const [found] = await findIncidentsByNumber(ctx.domain.db, command.number);
  if (!found) return refusedReply('incident_not_found', `There is no incident ${command.number}.`);
  const acker = found.acknowledgedBy
    ? await ctx.domain.db.selectFrom('users').select('display_name').where('id', '=', found.acknowledgedBy).executeTakeFirst()
    : undefined;
  return okReply(renderIncident(found, acker?.display_name));
}
