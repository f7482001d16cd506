/**
 * Who is acting, and through which surface. A chat identity that is not linked to a ProjectX user is still an
 * actor (it can ask for help and to be linked, and its refused attempts are audited under its chat identity).
 */
import type { Surface } from '../db/schema.ts';
import type { User } from './users.ts';

export type ActorSurface = Surface | 'console' | 'cli' | 'api' | 'system';

export interface ChatIdentity {
  surface: Surface;
  /** Slack: enterprise id (Enterprise Grid) or team id; Teams: AAD tenant id; email: ''. */
  tenant: string;
  /** Slack user id, AAD object id, or the email address. */
  externalId: string;
}

export interface Actor {
  surface: ActorSurface;
  user: User | undefined;
  /** The chat identity behind the request, when there is one. */
  identity?: ChatIdentity;
  /** For system actors: which integration acted (`webhook:acme`), recorded in the audit log. */
  via?: string;
}

/** The stable string recorded in the audit log for an actor. */
export function actorLabel(actor: Actor): string {
  if (actor.user) return `user:${actor.user.id}`;
  if (actor.identity) return `${actor.identity.surface}:${actor.identity.tenant ? `${actor.identity.tenant}/` : ''}${actor.identity.externalId}`;
  if (actor.surface === 'system') return actor.via ? `system:${actor.via}` : 'system';
  return `anonymous:${actor.surface}`;
}

export const SYSTEM_ACTOR: Actor = { surface: 'system', user: undefined };

/** The operator at the deployment's command line: trusted like the system for administration. */
export const CLI_ACTOR: Actor = { surface: 'cli', user: undefined };

/** System jobs and the operator's CLI may administer without a user's role. */
export const isOperator = (actor: Actor) => actor.surface === 'system' || actor.surface === 'cli';
