/** `/projectx status`: one line of health per integration. */
import { type Reply, okReply } from '../../message.ts';
import type { CommandContext } from '../context.ts';

const ICON: Record<string, string> = { healthy: '●', configured: '●', degraded: '◐', down: '○', unknown: '·', not_configured: '–', not_built: '–' };
const LABEL: Record<string, string> = { not_configured: 'not configured', not_built: 'not built in this version' };

export async function status(ctx: CommandContext): Promise<Reply> {
  const rows = await ctx.integrations();
  if (rows.length === 0) return okReply({ text: 'No integrations are known to this service.', blocks: [{ type: 'section', text: 'No integrations are known to this service.' }] });
  const lines = rows.map((row) => `${ICON[row.status] ?? '·'} ${row.title}: ${LABEL[row.status] ?? row.status}${row.detail ? ` (${row.detail})` : ''}`);
  return okReply({ text: lines.join('\n'), blocks: [{ type: 'header', text: 'Integration health' }, { type: 'section', text: lines.join('\n') }] });
}
