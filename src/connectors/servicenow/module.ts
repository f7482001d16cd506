/** ServiceNow as a module: its connector (src/connectors/servicenow/index.ts) and the job that mirrors incident attachments into evidence. */
import { defineModule } from '../../module.ts';
import { servicenowAttachments } from './attachments.ts';
import { servicenow } from './index.ts';

export const servicenowModule = defineModule({
  id: 'servicenow',
  title: 'ServiceNow',
  kind: 'connector',
  configuredBy: [
    ['SERVICENOW_BASE_URL', 'SERVICENOW_OAUTH_CLIENT_ID', 'SERVICENOW_OAUTH_CLIENT_SECRET'],
    ['SERVICENOW_BASE_URL', 'SERVICENOW_USER', 'SERVICENOW_PASSWORD'],
  ],
  connector: servicenow,
  jobs: [servicenowAttachments],
});
