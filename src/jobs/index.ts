/**
 * The jobs of the governance core: domain events routed to notifications, their delivery (chat and email) and
 * re-rendering, approval expiry, and housekeeping. Every other job belongs to a module (src/module.ts `jobs`);
 * queues, dead-letter queues, workers and schedules are derived from the module list (src/modules.ts).
 */
import type { AnyJob } from './runtime.ts';
import { deliverEmailNotification, deliverNotification, rerenderSubject, routeDomainEvent } from './domain-events.ts';
import { pruneInboundEvents } from './maintenance/prune-inbound-events.ts';
import { expireApprovals } from './tasks/expire-approvals.ts';

export const coreJobs: readonly AnyJob[] = [pruneInboundEvents, routeDomainEvent, deliverNotification, deliverEmailNotification, rerenderSubject, expireApprovals];
