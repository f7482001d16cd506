/**
 * Every connector of the service, in one explicit list. Add one by creating its folder under src/connectors/
 * (client, mapper, sync, push, webhook, index) and listing its definition here; jobs, schedules, metrics and
 * the CLI are derived from this list. test/connectors/registry.test.ts checks what each one declares.
 */
import type { ConnectorDefinition } from './sdk/contract.ts';
import { servicenow } from './servicenow/index.ts';

export const connectors: readonly ConnectorDefinition[] = [servicenow];

export function findConnector(id: string): ConnectorDefinition | undefined {
  return connectors.find((connector) => connector.id === id);
}
