/**
 * The ServiceNow connector: incidents (every 5 minutes) and change requests (every 15) pulled with a keyset
 * cursor; OAuth 2.0 client credentials or basic auth. Runbook RB-002; alerts to #alerts-servicenow.
 */
import { z } from 'zod';
import type { Config } from '../../config.ts';
import { defineConnector } from '../sdk/contract.ts';
import { type ServiceNowClient, type ServiceNowSettings, createServiceNowClient, serviceNowSettings } from './client.ts';
import { serviceNowPush } from './push.ts';
import { openP1Review } from './review.ts';
import { changeRequests, incidents } from './sync.ts';

export const servicenow = defineConnector<ServiceNowSettings, ServiceNowClient>({
  id: 'servicenow',
  title: 'ServiceNow',
  runbookId: 'RB-002',
  auth: ['oauth2_client_credentials', 'basic'],
  settings: serviceNowSettings,
  credentialFields: ['client_secret', 'password', 'webhook_secret'],
  alertChannel: 'alerts-servicenow',
  // The environment owns where and as whom; the rest (page size, ack, review assignee, push) is the operator's
  // and survives restarts.
  envSettings: ['baseUrl', 'clientId', 'user'],
  fromEnv(config: Config) {
    if (!config.SERVICENOW_BASE_URL) return undefined;
    const oauth = config.SERVICENOW_OAUTH_CLIENT_ID && config.SERVICENOW_OAUTH_CLIENT_SECRET;
    const basic = config.SERVICENOW_USER && config.SERVICENOW_PASSWORD;
    if (!oauth && !basic) return undefined;
    return {
      name: 'default',
      settings: {
        baseUrl: config.SERVICENOW_BASE_URL,
        ...(oauth ? { clientId: config.SERVICENOW_OAUTH_CLIENT_ID } : {}),
        ...(basic ? { user: config.SERVICENOW_USER } : {}),
      } as ServiceNowSettings,
      credentials: {
        ...(oauth ? { client_secret: config.SERVICENOW_OAUTH_CLIENT_SECRET! } : {}),
        ...(basic ? { password: config.SERVICENOW_PASSWORD! } : {}),
        ...(config.SERVICENOW_WEBHOOK_SECRET ? { webhook_secret: config.SERVICENOW_WEBHOOK_SECRET } : {}),
      },
    };
  },
  createClient: (instance, runtime) => createServiceNowClient(instance, runtime),
  models: [incidents, changeRequests],
  push: serviceNowPush,
  onEvent: openP1Review,
  // A business rule (or flow) on the instance posts `{ "table": "incident", "sys_id": "…" }` when a record changes.
  webhook: {
    scheme: 'standard',
    secretField: 'webhook_secret',
    payload: z.object({ table: z.enum(['incident', 'change_request']), sys_id: z.string().regex(/^[0-9a-f]{32}$/) }).transform((body) => ({ model: body.table, externalId: body.sys_id })),
    debounceSeconds: 10,
  },
});
