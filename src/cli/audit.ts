/** Administrative verbs are audited like chat actions, under the operator (`CLI_ACTOR`). */
import { CLI_ACTOR } from '../domain/actor.ts';
import { appendAudit } from '../domain/audit.ts';
import type { OperatorContext } from './context.ts';

export async function audit(ctx: Pick<OperatorContext, 'db' | 'domain'>, action: string, objectType: string, objectId: string, detail: Record<string, unknown>): Promise<void> {
  await ctx.db.transaction().execute((trx) => appendAudit(trx, { actor: CLI_ACTOR, action, objectType, objectId, outcome: 'success', at: ctx.domain.clock.now(), detail }));
}
