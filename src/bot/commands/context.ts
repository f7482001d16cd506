/** What a command handler gets: the domain, who is asking, and read-only views the surfaces provide. */
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';

export interface IntegrationHealth {
  id: string;
  title: string;
  configured: boolean;
  /** A connector's sync health; `configured` for a surface (nothing to measure); or why it is off. */
  status: 'unknown' | 'healthy' | 'degraded' | 'down' | 'configured' | 'not_configured' | 'not_built';
  detail?: string;
}

export interface CommandContext {
  domain: DomainDeps;
  actor: Actor;
  /** One line per integration for `/projectx status`. */
  integrations: () => Promise<IntegrationHealth[]>;
}
