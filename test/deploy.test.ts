/**
 * The deployment files (Dockerfile, compose.yaml, the Helm chart in deploy/helm/projectx) checked against the code,
 * without Docker or Helm: every configuration variable is templated, secret or deliberately left out; secrets
 * come only from a Secret or the env file; every command is a verb the CLI accepts; the probe, metrics and
 * healthcheck paths answer on a running web and worker; the port is PORT's default; the image is Node 24 and
 * not root; and the alerts name only metrics the service exports. Helm templates are checked as text; values.yaml
 * and compose.yaml are parsed.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { run } from '../src/cli/main.ts';
import { CONFIG_VARIABLES, SECRET_VARIABLES, loadConfig } from '../src/config.ts';
import { type Service, startService } from '../src/main.ts';
import { ROLES, connectorsOf } from '../src/module.ts';
import { modules } from '../src/modules.ts';
import { type TestDatabase, createTestDatabase } from './support/database.ts';
import { captureLogs } from './support/logs.ts';

const ROOT = new URL('../', import.meta.url);
const CHART = 'deploy/helm/projectx/';
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8');
const templateNames = readdirSync(new URL(`${CHART}templates/`, ROOT)).sort();
const template = (name: string) => read(`${CHART}templates/${name}`);

const Rule = z.object({
  alert: z.string().regex(/^ProjectX[A-Za-z]+$/),
  expr: z.string().min(1),
  for: z.string().optional(),
  labels: z.object({ severity: z.enum(['info', 'warning', 'critical']) }),
  annotations: z.object({ summary: z.string().min(1), description: z.string().min(1) }),
});
const Values = z.object({
  env: z.record(z.string(), z.string()),
  optionalNotTemplated: z.array(z.string()),
  secret: z.object({
    existingSecret: z.string(),
    values: z.record(z.string(), z.unknown()),
    required: z.array(z.string()),
    variables: z.array(z.string()),
  }),
  extraEnv: z.array(z.unknown()),
  metrics: z.object({ prometheusRule: z.object({ rules: z.array(Rule) }) }),
});
const ComposeService = z.object({
  image: z.string().optional(),
  build: z.unknown().optional(),
  entrypoint: z.unknown().optional(),
  command: z.array(z.string()).optional(),
  env_file: z.unknown().optional(),
  environment: z.record(z.string(), z.string()).optional(),
  ports: z.array(z.string()).optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.string() })).optional(),
});
const Compose = z.object({ services: z.record(z.string(), ComposeService) });

const values = Values.parse(parse(read(`${CHART}values.yaml`)));
const valuesText = read(`${CHART}values.yaml`);
// compose.yaml shares the service settings through a YAML anchor and `<<` merge keys.
const compose = Compose.parse(parse(read('compose.yaml'), { merge: true }));
/** The services built from our image (the others, PostgreSQL, are not ours). */
const ours = Object.entries(compose.services).filter(([, service]) => service.build !== undefined);
const packageJson = z
  .object({ version: z.string(), bin: z.record(z.string(), z.string()), devDependencies: z.record(z.string(), z.string()) })
  .parse(JSON.parse(read('package.json')));
const PORT_DEFAULT = (() => {
  const loaded = loadConfig({});
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  return loaded.config.PORT;
})();

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerInstructions(text: string): { keyword: string; args: string }[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}
const docker = dockerInstructions(read('Dockerfile'));
const finalStage = docker.slice(docker.findLastIndex((instruction) => instruction.keyword === 'FROM'));
const jsonArray = (text: string) => z.array(z.string()).parse(JSON.parse(text));

/** The `args: [...]` of a chart template's container (written as a JSON flow sequence). */
function templateArgs(name: string): string[] {
  const match = /^\s*args:\s*(\[.*\])\s*$/m.exec(template(name));
  if (!match?.[1]) throw new Error(`${name} has no args: [...] line`);
  return jsonArray(match[1]);
}

/** The httpGet path and port of a probe in a chart template. */
function probe(name: string, kind: 'livenessProbe' | 'readinessProbe' | 'startupProbe'): { path: string; port: string } {
  const match = new RegExp(`${kind}:\\s*\\n\\s*httpGet:\\s*\\n\\s*path:\\s*(\\S+)\\s*\\n\\s*port:\\s*(\\S+)`).exec(template(name));
  if (!match?.[1] || !match[2]) throw new Error(`${name} has no ${kind} with httpGet`);
  return { path: match[1], port: match[2] };
}

/** Metric names a PromQL expression reads: identifiers that are not functions, keywords or label names. */
function promqlMetricNames(expr: string): string[] {
  const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    const [, identifier = '', call] = match;
    if (call === undefined && !KEYWORDS.has(identifier.toLowerCase())) names.add(identifier);
  }
  return [...names];
}

/** Runs the real CLI entry in-process with these arguments; returns its exit code and what it printed. */
async function cli(args: readonly string[]): Promise<{ code: number; out: string }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await run(args, {}, modules, { stdout, stderr: new PassThrough(), stdin: new PassThrough() });
  return { code, out };
}

describe('deployment files against the code', () => {
  let tdb: TestDatabase;
  const services: Record<'web' | 'worker', Service | undefined> = { web: undefined, worker: undefined };
  const running = (role: 'web' | 'worker'): Service => {
    const service = services[role];
    if (!service) throw new Error(`the ${role} service did not start`);
    return service;
  };

  beforeAll(async () => {
    tdb = await createTestDatabase();
    const loaded = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', SHUTDOWN_TIMEOUT_MS: '5000' });
    if (!loaded.ok) throw new Error(loaded.problems.join('; '));
    for (const role of ['web', 'worker'] as const) services[role] = await startService({ config: loaded.config, role, logger: captureLogs({ level: 'warn' }).logger });
  });
  afterAll(async () => {
    for (const service of Object.values(services)) await service?.stop();
    await tdb?.drop();
  });

  describe('configuration variables', () => {
    const env = Object.keys(values.env);
    const buckets = { env, secret: values.secret.variables, optionalNotTemplated: values.optionalNotTemplated };

    it('puts every variable the service reads in exactly one place of values.yaml: env, secret.variables or optionalNotTemplated', () => {
      const placed = [...buckets.env, ...buckets.secret, ...buckets.optionalNotTemplated];
      expect([...placed].sort()).toEqual([...CONFIG_VARIABLES].sort());
      expect(new Set(placed).size).toBe(placed.length);
    });

    it('explains each variable it leaves out in a comment next to the list', () => {
      for (const name of values.optionalNotTemplated) expect(valuesText, name).toMatch(new RegExp(`^#\\s+${name}:\\s+\\S`, 'm'));
    });

    it('gives every pod the env values through one helper, and a plain value only for non-secret variables', () => {
      const helpers = template('_helpers.tpl');
      // The helper refuses an env entry that is a secret variable, and renders each secret variable as a secretKeyRef.
      expect(helpers).toMatch(/range \$name, \$value := \.Values\.env \}\}\s*\{\{- if has \$name \$\.Values\.secret\.variables \}\}\s*\{\{- fail/);
      expect(helpers).toMatch(/range \$name := \.Values\.secret\.variables \}\}\s*- name: \{\{ \$name \}\}\s*valueFrom:\s*secretKeyRef:/);
      for (const name of templateNames) {
        const text = template(name);
        const containers = (text.match(/^\s*env:\s*$/gm) ?? []).length;
        expect((text.match(/include "projectx\.env" \./g) ?? []).length, name).toBe(containers);
      }
      expect(templateArgsOwners()).toEqual(['deployment-web.yaml', 'deployment-worker.yaml', 'job-migrate.yaml']);
    });
  });

  describe('secrets', () => {
    it('reads every secret variable, and only those, from the Secret', () => {
      expect([...values.secret.variables].sort()).toEqual([...SECRET_VARIABLES].sort());
      for (const name of values.secret.required) expect(values.secret.variables).toContain(name);
    });

    it('never holds a secret value in values.yaml', () => {
      expect(values.secret.values).toEqual({});
      expect(values.secret.existingSecret).toBe('');
      expect(values.extraEnv).toEqual([]);
      for (const name of SECRET_VARIABLES) expect(Object.keys(values.env), name).not.toContain(name);
    });

    it('names no secret variable in a template: each comes from the range over secret.variables', () => {
      for (const name of templateNames) {
        for (const secret of SECRET_VARIABLES) expect(template(name), `${name} names ${secret}`).not.toMatch(new RegExp(`\\b${secret}\\b`));
      }
      // The chart-created Secret takes its data from secret.values only, and refuses names that are not secret variables.
      expect(template('secret.yaml')).toMatch(/range \$name, \$value := \.Values\.secret\.values \}\}\s*\{\{- if not \(has \$name \$\.Values\.secret\.variables\) \}\}\s*\{\{- fail/);
    });

    it('gives compose services their secrets from the env file, the required ones as ${VAR:?}, none inline', () => {
      expect(ours.length).toBeGreaterThan(0);
      for (const [name, service] of ours) {
        expect(service.env_file, name).toBe('.env');
        for (const [variable, value] of Object.entries(service.environment ?? {})) {
          if (!(SECRET_VARIABLES as readonly string[]).includes(variable)) continue;
          expect(value, `${name}: ${variable}`).toMatch(/\$\{[A-Z_]+:\?[^}]+\}/);
          const literal = value.replace(/\$\{[^}]*\}/g, '');
          if (variable === 'DATABASE_URL') expect(new URL(literal).password, `${name}: the DATABASE_URL password`).toBe('');
          else expect(literal, `${name}: ${variable}`).toBe('');
        }
      }
      const postgres = compose.services.postgres?.environment ?? {};
      expect(postgres.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?[^}]+\}$/);
    });

    it('keeps .env out of the image build', () => {
      const ignored = read('.dockerignore').split('\n').map((line) => line.trim());
      expect(ignored).toContain('.env');
      expect(ignored).toContain('node_modules');
    });
  });

  describe('commands', () => {
    const entrypoint = jsonArray(finalStage.find((instruction) => instruction.keyword === 'ENTRYPOINT')?.args ?? 'null');
    const cmd = jsonArray(finalStage.find((instruction) => instruction.keyword === 'CMD')?.args ?? 'null');

    it('runs bin/projectx.js with node as the image entrypoint, which compose and the chart keep', () => {
      expect(entrypoint).toEqual(['node', 'bin/projectx.js']);
      expect(packageJson.bin.projectx).toBe('bin/projectx.js');
      for (const [name, service] of ours) expect(service.entrypoint, name).toBeUndefined();
      // A container's `command` would replace the entrypoint; the only `command:` allowed is a preStop exec's.
      for (const name of templateNames) {
        const lines = template(name).split('\n');
        lines.forEach((line, index) => {
          if (/^\s*command:/.test(line)) expect(lines[index - 1], `${name} line ${index + 1}`).toMatch(/^\s*exec:\s*$/);
        });
      }
    });

    it('uses start --role web, start --role worker and migrate in compose and the chart', () => {
      const composeCommands = ours.map(([, service]) => service.command?.join(' ')).sort();
      expect(composeCommands).toEqual(['migrate', 'start --role web', 'start --role web', 'start --role worker']);
      expect(templateArgs('deployment-web.yaml')).toEqual(['start', '--role', 'web']);
      expect(templateArgs('deployment-worker.yaml')).toEqual(['start', '--role', 'worker']);
      expect(templateArgs('job-migrate.yaml')).toEqual(['migrate']);
    });

    it('only uses verbs and roles the CLI accepts', async () => {
      const all = [cmd, ...ours.map(([, service]) => service.command ?? []), ...templateArgsOwners().map(templateArgs)];
      for (const args of all) {
        const [verb = '', ...rest] = args;
        const help = await cli([verb, '--help']);
        expect(help.code, args.join(' ')).toBe(0);
        expect(help.out, args.join(' ')).toContain(`Usage: projectx ${verb}`);
        if (verb === 'start') {
          expect(rest[0]).toBe('--role');
          expect(ROLES).toContain(rest[1]);
          expect(help.out).toContain(`--role ${ROLES.join('|')}`);
        } else {
          expect(verb).toBe('migrate');
          expect(rest).toEqual([]);
        }
      }
      await expect(cli(['deploy-nonsense', '--help'])).rejects.toThrow(/unknown command/);
    });

    it('runs the migration before web and worker: a compose dependency and a Helm pre-install/pre-upgrade hook', () => {
      const migrate = ours.find(([, service]) => service.command?.[0] === 'migrate');
      expect(migrate?.[1].depends_on?.postgres?.condition).toBe('service_healthy');
      for (const [name, service] of ours) {
        if (service.command?.[0] === 'start') expect(service.depends_on?.[migrate![0]]?.condition, name).toBe('service_completed_successfully');
      }
      expect(template('job-migrate.yaml')).toMatch(/helm\.sh\/hook: pre-install,pre-upgrade/);
      // The Secret it reads must exist first: a hook of lower weight.
      expect(template('secret.yaml')).toMatch(/helm\.sh\/hook: pre-install,pre-upgrade\s*\n\s*helm\.sh\/hook-weight: "-10"/);
    });
  });

  describe('probes, metrics and port', () => {
    it('probes /healthz (liveness) and /readyz (readiness) on the http port, and both answer 200 on a running web and worker', async () => {
      for (const [name, role] of [['deployment-web.yaml', 'web'], ['deployment-worker.yaml', 'worker']] as const) {
        expect(probe(name, 'livenessProbe')).toEqual({ path: '/healthz', port: 'http' });
        expect(probe(name, 'readinessProbe')).toEqual({ path: '/readyz', port: 'http' });
        expect(probe(name, 'startupProbe')).toEqual({ path: '/healthz', port: 'http' });
        for (const path of ['/healthz', '/readyz']) expect((await fetch(`${running(role).http.url}${path}`)).status, `${role} ${path}`).toBe(200);
      }
    });

    it('scrapes the metrics path the service serves, on the web and the worker', async () => {
      expect(/^\s*path:\s*(\S+)\s*$/m.exec(template('servicemonitor.yaml'))?.[1]).toBe('/metrics');
      for (const role of ['web', 'worker'] as const) {
        const res = await fetch(`${running(role).http.url}/metrics`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      }
    });

    it('passes the image HEALTHCHECK (node fetch of /healthz) against a running service', async () => {
      const healthcheck = finalStage.find((instruction) => instruction.keyword === 'HEALTHCHECK')?.args ?? '';
      const command = jsonArray(/CMD\s+(\[.*\])$/.exec(healthcheck)?.[1] ?? 'null');
      expect(command[0]).toBe('node');
      expect(command.join(' ')).toContain('/healthz');
      expect(healthcheck).not.toMatch(/\b(curl|wget)\b/);
      const port = String(running('worker').http.port);
      const env = { PATH: process.env.PATH ?? '', PORT: port };
      await expect(promisify(execFile)(process.execPath, command.slice(1), { env })).resolves.toBeDefined();
    });

    it("listens on PORT's default everywhere: values, Dockerfile EXPOSE, compose container ports", () => {
      expect(values.env.PORT).toBe(String(PORT_DEFAULT));
      expect(template('_helpers.tpl')).toMatch(/define "projectx\.port" -\}\}\s*\{\{- required "[^"]*" \.Values\.env\.PORT \}\}/);
      for (const name of ['deployment-web.yaml', 'deployment-worker.yaml']) expect(template(name)).toMatch(/- name: http\s*\n\s*containerPort: \{\{ include "projectx\.port" \. \}\}/);
      expect(finalStage.filter((instruction) => instruction.keyword === 'EXPOSE').map((instruction) => instruction.args)).toEqual([String(PORT_DEFAULT)]);
      for (const [name, service] of ours) for (const mapping of service.ports ?? []) expect(mapping.split(':').at(-1), name).toBe(String(PORT_DEFAULT));
    });
  });

  describe('image', () => {
    it('is Node of the major the project pins (the `node` devDependency)', () => {
      const args = new Map(
        docker
          .filter((instruction) => instruction.keyword === 'ARG')
          .map((instruction) => instruction.args.split('=') as [string, string | undefined])
          .filter((pair): pair is [string, string] => pair[1] !== undefined),
      );
      const froms = docker.filter((instruction) => instruction.keyword === 'FROM').map((instruction) => instruction.args.split(/\s+/)[0] ?? '');
      const major = packageJson.devDependencies.node?.split('.')[0];
      expect(major).toBe('24');
      expect(froms.length).toBeGreaterThanOrEqual(2);
      for (const from of froms) {
        const image = from.replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? `<${name} unset>`);
        expect(image).toMatch(new RegExp(`^node:${major}(\\.[\\d.]+)?-`));
      }
    });

    it('installs production dependencies only, and runs as a non-root user', () => {
      const npm = docker.filter((instruction) => instruction.keyword === 'RUN' && /\bnpm ci\b/.test(instruction.args));
      expect(npm.length).toBe(1);
      expect(npm[0]?.args).toContain('--omit=dev');
      const user = finalStage.filter((instruction) => instruction.keyword === 'USER').at(-1)?.args;
      expect(user).toBeDefined();
      expect(user).not.toMatch(/^(root|0)(:|$)/);
      expect(valuesText).toMatch(/runAsNonRoot: true/);
    });

    it('is tagged by default with the service version (Chart appVersion)', () => {
      const chart = z.object({ appVersion: z.string(), name: z.string() }).parse(parse(read(`${CHART}Chart.yaml`)));
      expect(chart.appVersion).toBe(packageJson.version);
    });
  });

  describe('alerts', () => {
    it('names only metrics the service exports', () => {
      const known = new Map<string, string>();
      for (const role of ['web', 'worker'] as const) for (const metric of running(role).metrics.registry.getMetricsAsArray()) known.set(metric.name, String(metric.type));
      // Metrics of modules that register them only once configured (Slack, email, partner webhooks): the module
      // test checks each declared one is exported by a configured service.
      for (const module of modules) for (const name of module.metrics ?? []) if (!known.has(name)) known.set(name, 'declared');
      const exported = (name: string) => {
        if (known.has(name)) return true;
        const base = /^(.+)_(bucket|sum|count)$/.exec(name)?.[1];
        return base !== undefined && ['histogram', 'summary'].includes(known.get(base) ?? '');
      };
      expect(values.metrics.prometheusRule.rules.length).toBeGreaterThan(0);
      for (const rule of values.metrics.prometheusRule.rules) {
        const names = promqlMetricNames(rule.expr);
        expect(names.length, rule.alert).toBeGreaterThan(0);
        for (const name of names) expect(exported(name), `${rule.alert}: ${name}`).toBe(true);
      }
    });

    it('cites only runbooks the connectors declare', () => {
      const runbooks = new Set(connectorsOf(modules).map((connector) => connector.runbookId));
      const cited = JSON.stringify(values.metrics.prometheusRule.rules).match(/RB-\d+/g) ?? [];
      expect(cited.length).toBeGreaterThan(0);
      for (const id of cited) expect(runbooks).toContain(id);
    });

    it('reads metric names out of PromQL (the parser the checks above rely on)', () => {
      expect(promqlMetricNames('max by (namespace, queue) (queue_depth{state="ready", queue!~".+[.]dead"}) > 1000')).toEqual(['queue_depth']);
      expect(promqlMetricNames('histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{route="/x"}[5m]))) > 2.5')).toEqual(['http_request_duration_seconds_bucket']);
      expect(promqlMetricNames('sum(rate(a_total[5m])) / sum(rate(b_total[5m])) > 0.5 and on (queue) c')).toEqual(['a_total', 'b_total', 'c']);
    });
  });
});

/** The chart templates that run the image with arguments (the pods and the migration Job). */
function templateArgsOwners(): string[] {
  return templateNames.filter((name) => /^\s*args:/m.test(template(name)));
}
