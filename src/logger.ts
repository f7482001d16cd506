/**
 * Structured logging (pino) with two layers of redaction and an ambient correlation context.
 *
 * - Key redaction: any property whose name looks like a credential (token, secret, password, authorization,
 *   cookie, signature, …) is replaced by "[redacted]" at any depth, whatever the caller logged.
 * - Value scrubbing: the serialized line is searched for every configured secret value (and its JSON-escaped
 *   form) before it is written, so a token that leaks into an error message or a URL is still caught.
 * - Context: `runWithContext({ requestId, traceparent, ... }, fn)` makes every line logged inside `fn` (and in
 *   anything it awaits) carry those fields. HTTP requests and jobs both run inside one.
 *
 * Pretty output only on a TTY; JSON everywhere else.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LogContext {
  requestId?: string;
  correlationId?: string;
  traceparent?: string;
  job?: string;
  jobId?: string;
}

const contextStorage = new AsyncLocalStorage<LogContext>();

/** Runs `fn` with `context` merged over the current one; every log line inside carries it. */
export function runWithContext<T>(context: LogContext, fn: () => T): T {
  return contextStorage.run({ ...contextStorage.getStore(), ...context }, fn);
}

/** Runs `fn` outside any context: for work started by a request but done for many (timers, relays). */
export function outsideContext<T>(fn: () => T): T {
  return contextStorage.exit(fn);
}

/** The ambient context, e.g. to carry the correlation id into a job payload or an outbound call. */
export function currentContext(): LogContext {
  return contextStorage.getStore() ?? {};
}

const SENSITIVE_KEY = /(passw(or)?d|passphrase|secret|token|authorization|cookie|signature|api[-_]?key|private[-_]?key|encryption[-_]?key|credential)/i;
const REDACTED = '[redacted]';
const MAX_DEPTH = 8;

/** Returns a copy of `value` with every sensitive-looking key's value replaced. Exported for tests. */
export function redactKeys(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((item) => redactKeys(item, depth + 1));
  if (value instanceof Date) return value;
  // Raw bytes are never worth a log line and may be key material.
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = SENSITIVE_KEY.test(key) && inner !== undefined && inner !== null ? REDACTED : redactKeys(inner, depth + 1);
  }
  return out;
}

/**
 * Returns a function that replaces every occurrence of the given secret values (raw or JSON-escaped) with
 * "[redacted]". Used on every log line, and on error text stored in the database.
 */
export function createScrubber(secrets: readonly string[]): (text: string) => string {
  const needles = [...new Set(secrets.flatMap((secret) => [secret, JSON.stringify(secret).slice(1, -1)]))]
    .filter((needle) => needle.length > 0)
    .sort((a, b) => b.length - a.length);
  if (needles.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const needle of needles) {
      if (out.includes(needle)) out = out.split(needle).join(REDACTED);
    }
    return out;
  };
}

/** A line-oriented stream that scrubs secret values before the bytes reach `target`. */
function scrubbingStream(target: DestinationStream | NodeJS.WritableStream, secrets: readonly string[]): Writable {
  const scrub = createScrubber(secrets);
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      target.write(scrub(chunk.toString()));
      callback();
    },
  });
}

export interface LoggerOptions {
  level?: string;
  /** Values that must never be written (the configured secrets). */
  secrets?: readonly string[];
  /** Where lines go: stdout (the default), stderr (operator commands, whose stdout is their output), or a stream (tests). */
  destination?: 'stdout' | 'stderr' | DestinationStream | NodeJS.WritableStream;
  /** Pretty-print when writing to stdout or stderr and that is a terminal (default true); JSON otherwise. */
  pretty?: boolean;
}

/**
 * @example
 * const logger = createLogger({ level: 'info', secrets: secretValues(process.env) });
 * runWithContext({ requestId: 'r1' }, () => logger.info({ path: '/x' }, 'handled'));
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = options.secrets ?? [];
  const destination = options.destination ?? 'stdout';
  let target: DestinationStream | NodeJS.WritableStream = destination === 'stdout' ? process.stdout : destination === 'stderr' ? process.stderr : destination;
  const terminal = destination === 'stdout' ? process.stdout.isTTY : destination === 'stderr' ? process.stderr.isTTY : false;
  if (terminal && options.pretty !== false) {
    target = pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', destination: destination === 'stderr' ? 2 : 1 } });
  }
  const stream = secrets.length > 0 ? scrubbingStream(target, secrets) : target;
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'projectx-integrations' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => redactKeys(object) as Record<string, unknown>,
      },
      mixin: () => ({ ...contextStorage.getStore() }),
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    },
    stream,
  );
}
