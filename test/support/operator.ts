/**
 * Operator verbs run in-process: an `OperatorContext` on a domain fixture's database and queue, a recording
 * `Io`, and `runVerb` (src/cli/dispatch.ts: help, usage errors with the usage line, `--json` for lists).
 */
import { Readable, Writable } from 'node:stream';
import type { OperatorContext } from '../../src/cli/context.ts';
import { runVerb } from '../../src/cli/dispatch.ts';
import type { CliVerb, Io } from '../../src/cli/verb.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import type { Keyring } from '../../src/connectors/sdk/crypto.ts';
import type { Service } from '../../src/main.ts';
import { connectorsOf } from '../../src/module.ts';
import { modules } from '../../src/modules.ts';
import type { DomainFixture } from './domain.ts';
import { captureLogs } from './logs.ts';

/** On a domain fixture, or on a running service (`{ db, jobs, domain }`). */
export function operatorContext(source: DomainFixture | Pick<Service, 'db' | 'jobs' | 'domain'>, options: { env?: Record<string, string>; config?: Config; keyring?: Keyring | undefined } = {}): OperatorContext {
  const { db, jobs, domain } = 'tdb' in source ? { db: source.tdb.db, jobs: source.jobs, domain: source.deps } : source;
  const loaded = options.config ? { ok: true as const, config: options.config } : loadConfig(options.env ?? {});
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  return {
    db,
    jobs,
    domain,
    config: loaded.config,
    keyring: options.keyring,
    logger: captureLogs().logger,
    modules,
    connectors: connectorsOf(modules),
    integrations: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
}

export interface RecordedIo {
  io: Omit<Io, 'json'>;
  out: string[];
  err: string[];
}

/** An Io that records what a verb prints, line by line; `input` is what it reads from stdin. */
export function recordingIo(input = ''): RecordedIo {
  const out: string[] = [];
  const err: string[] = [];
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  return {
    io: { out: (text) => void out.push(text), err: (text) => void err.push(text), write: (text) => void out.push(text), input: Readable.from(input ? [input] : []), output: sink, interactive: false, terminal: false },
    out,
    err,
  };
}

/** Runs `projectx <verb> <args>` in-process; resolves with the exit code and what it printed (a refusal rejects). */
export async function runOperator(ctx: OperatorContext, verb: CliVerb, args: readonly string[], input = ''): Promise<{ code: number; out: string[]; err: string[] }> {
  const recorded = recordingIo(input);
  const code = await runVerb(ctx, verb, args, recorded.io);
  return { code, out: recorded.out, err: recorded.err };
}
