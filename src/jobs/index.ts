/**
 * Every job of the service, in one explicit list. Add a job by defining it next to its feature and listing it
 * here; queues, dead-letter queues, workers and schedules are all derived from this list.
 */
import { slackEvidenceUpload } from '../bot/slack/evidence-upload.ts';
import { slackPublishHome } from '../bot/slack/home.ts';
import { slackLinkByEmail } from '../bot/slack/link-by-email.ts';
import { slackRefreshTokens } from '../bot/slack/token-refresh.ts';
import { webhookSecurityAlert } from '../connectors/webhook-bridge/alerts.ts';
import { webhookProcess } from '../connectors/webhook-bridge/process.ts';
import { emailProcess } from '../connectors/email/process.ts';
import { deliverWebhook } from '../connectors/webhook-bridge/outbound/deliver.ts';
import type { AnyJob } from './runtime.ts';
import { connectorReconcile, connectorSync } from './connector-sync.ts';
import { connectorPush, connectorPushSweep } from './connector-push.ts';
import { servicenowAttachments } from '../connectors/servicenow/attachments.ts';
import { deliverEmailNotification, deliverNotification, rerenderSubject, routeDomainEvent } from './domain-events.ts';
import { pruneInboundEvents } from './maintenance/prune-inbound-events.ts';
import { expireApprovals } from './tasks/expire-approvals.ts';

export const jobDefinitions: readonly AnyJob[] = [
  pruneInboundEvents,
  routeDomainEvent,
  deliverNotification,
  deliverEmailNotification,
  rerenderSubject,
  expireApprovals,
  slackEvidenceUpload,
  slackPublishHome,
  slackLinkByEmail,
  slackRefreshTokens,
  webhookProcess,
  webhookSecurityAlert,
  deliverWebhook,
  emailProcess,
  connectorSync,
  connectorPush,
  connectorPushSweep,
  connectorReconcile,
  servicenowAttachments,
];
