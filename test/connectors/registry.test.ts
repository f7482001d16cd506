/**
 * Every connector of the module list declares what the framework and operators rely on: its config (settings
 * schema, credential fields, the environment it reads), its models with their schedules, its runbook id and
 * alert channel. A connector added without one of these fails here, not in production.
 */
import { describe, expect, it } from 'vitest';
import { scheduleCron } from '../../src/jobs/connector-sync.ts';
import { loadConfig } from '../../src/config.ts';
import { modules } from '../../src/modules.ts';

const connectorModules = modules.filter((module) => module.connector !== undefined);
const connectors = connectorModules.map((module) => module.connector!);
const findConnector = (id: string) => connectors.find((connector) => connector.id === id);

describe('connector registry', () => {
  it('has each connector once, under a stable id', () => {
    const ids = connectors.map((connector) => connector.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z][a-z0-9-]*$/);
    expect(findConnector('servicenow')?.title).toBe('ServiceNow');
    expect(findConnector('nope')).toBeUndefined();
  });

  for (const connector of connectors) {
    describe(connector.id, () => {
      it('declares a runbook id, an alert channel and its auth kinds', () => {
        expect(connector.runbookId).toMatch(/^RB-\d{3}$/);
        expect(connector.alertChannel).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
        expect(connector.auth.length).toBeGreaterThan(0);
      });

      it('declares models, each with a schedule pg-boss accepts, and distinct names', () => {
        expect(connector.models.length).toBeGreaterThan(0);
        const names = connector.models.map((model) => model.name);
        expect(new Set(names).size).toBe(names.length);
        for (const model of connector.models) {
          expect(model.name).toMatch(/^[a-z][a-z0-9_]*$/);
          expect(scheduleCron(model.schedule)).toMatch(/^(\S+ ){4}\S+$/);
          expect(model.schedule.jitterSeconds).toBeGreaterThanOrEqual(0);
        }
      });

      it('is its module\'s connector, and reads its instance from exactly the variables the module names', () => {
        const entry = connectorModules.find((module) => module.connector === connector);
        expect(entry?.id, 'a connector module has the connector\'s id').toBe(connector.id);
        expect(entry?.kind).toBe('connector');
        const empty = loadConfig({});
        if (!empty.ok) throw new Error(empty.problems.join('; '));
        expect(connector.fromEnv(empty.config)).toBeUndefined();
        for (const set of entry!.configuredBy) {
          const env = Object.fromEntries(set.map((variable) => [variable, variable.endsWith('_URL') ? 'https://example.service-now.com' : variable.endsWith('_PROJECT_KEYS') ? 'SEC,OPS' : 'a-long-enough-value']));
          // Every OAuth flow that comes back to us needs the service's public URL (src/config.ts, inconsistencies).
          const loaded = loadConfig({ PUBLIC_URL: 'https://projectx.example.test', ...env });
          if (!loaded.ok) throw new Error(loaded.problems.join('; '));
          const described = connector.fromEnv(loaded.config);
          expect(described, `${set.join(', ')} should describe an instance`).toBeDefined();
          // Settings validate, and every credential it stores is a declared credential field.
          expect(connector.settings.safeParse(described!.settings).success).toBe(true);
          for (const field of Object.keys(described!.credentials)) expect(connector.credentialFields).toContain(field);
        }
      });
    });
  }
});
