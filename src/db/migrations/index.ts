/**
 * Every migration, by name, in one explicit list (no directory scanning: works the same under tsx, vitest and
 * Node's type stripping). Names are timestamp-prefixed and sort in the order they must run.
 */
import type { Migration } from 'kysely/migration';
import * as foundation from './20261122_0130_foundation.ts';
import * as domain from './20261122_0200_domain.ts';
import * as slack from './20261122_0300_slack.ts';
import * as slackMessageTeam from './20261122_0400_slack_message_team.ts';
import * as inboundUnsettledIndex from './20261122_0500_inbound_unsettled_index.ts';
import * as identityNotify from './20261122_0600_identity_notify.ts';
import * as webhooks from './20261122_0700_webhooks.ts';
import * as webhookTaskOnce from './20261122_0800_webhook_task_once.ts';
import * as partnerEmailSenders from './20261122_0900_partner_email_senders.ts';
import * as inboundJobOutbox from './20261122_1000_inbound_job_outbox.ts';
import * as connectors from './20261122_1100_connectors.ts';
import * as connectorPushes from './20261122_1200_connector_pushes.ts';
import * as subscriptionUrlsEmailBodies from './20261207_1000_subscription_urls_email_bodies.ts';
import * as slackInstallLinks from './20261207_1100_slack_install_links.ts';
import * as slackInboundSealed from './20261207_1200_slack_inbound_sealed.ts';
import * as teams from './20261207_1300_teams.ts';
import * as teamsEvidence from './20261207_1400_teams_evidence.ts';
import * as auditChainedAtCommit from './20261207_1500_audit_chained_at_commit.ts';
import * as auditCorrelationIndex from './20261207_1600_audit_correlation_index.ts';
import * as jira from './20261207_1700_jira.ts';
import * as evidenceQuarantine from './20261208_0100_evidence_quarantine.ts';
import * as evidenceRenewal from './20261208_0200_evidence_renewal.ts';

export const migrations: Record<string, Migration> = {
  '20261122_0130_foundation': foundation,
  '20261122_0200_domain': domain,
  '20261122_0300_slack': slack,
  '20261122_0400_slack_message_team': slackMessageTeam,
  '20261122_0500_inbound_unsettled_index': inboundUnsettledIndex,
  '20261122_0600_identity_notify': identityNotify,
  '20261122_0700_webhooks': webhooks,
  '20261122_0800_webhook_task_once': webhookTaskOnce,
  '20261122_0900_partner_email_senders': partnerEmailSenders,
  '20261122_1000_inbound_job_outbox': inboundJobOutbox,
  '20261122_1100_connectors': connectors,
  '20261122_1200_connector_pushes': connectorPushes,
  '20261207_1000_subscription_urls_email_bodies': subscriptionUrlsEmailBodies,
  '20261207_1100_slack_install_links': slackInstallLinks,
  '20261207_1200_slack_inbound_sealed': slackInboundSealed,
  '20261207_1300_teams': teams,
  '20261207_1400_teams_evidence': teamsEvidence,
  '20261207_1500_audit_chained_at_commit': auditChainedAtCommit,
  '20261207_1600_audit_correlation_index': auditCorrelationIndex,
  '20261207_1700_jira': jira,
  '20261208_0100_evidence_quarantine': evidenceQuarantine,
  '20261208_0200_evidence_renewal': evidenceRenewal,
};
