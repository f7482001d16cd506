/**
 * Our clamd client: the virus scan of an evidence file over clamd's INSTREAM protocol (`man clamd`), on TCP or
 * a Unix socket.
 *
 * Hand-written on node:net rather than the `clamscan` npm package: the protocol is a few lines, we stream from
 * our own Readable with backpressure (a 25 MB file never sits in memory), we need TCP and Unix-socket URLs, and
 * the result must fail closed: only clamd's own `stream: OK` is clean. A refused connection, a timeout, clamd's
 * size limit, a hang-up or any reply we do not recognise rejects with ScannerUnavailableError, never a verdict.
 *
 * @example
 * const scanner = clamdScanner('tcp://127.0.0.1:3310');
 * const verdict = await scanner.scan(createReadStream(file)); // { clean: true } or { clean: false, signature }
 */
import net from 'node:net';
import { Readable } from 'node:stream';

export type ScanVerdict = { clean: true } | { clean: false; signature: string };

/** No verdict was read. `scan_limit_exceeded`: clamd stopped reading at its StreamMaxLength. */
export class ScannerUnavailableError extends Error {
  readonly code: 'scanner_unavailable' | 'scan_limit_exceeded';
  constructor(code: ScannerUnavailableError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ScannerUnavailableError';
    this.code = code;
  }
}

export interface EvidenceScanner {
  /** Where it scans, safe to log (no credentials). */
  readonly describe: string;
  /**
   * Streams `content` through INSTREAM. Resolves clean or infected; rejects ScannerUnavailableError when no
   * verdict was read (refused connection, timeout, size limit, anything unexpected): never clean by default.
   * An error from `content` itself rejects as that error. The caller owns `content`: when clamd stops early
   * it is no longer read, but neither ended nor destroyed.
   */
  scan(content: AsyncIterable<Uint8Array> | Readable): Promise<ScanVerdict>;
  /** zPING → PONG, or rejects ScannerUnavailableError. */
  ping(): Promise<void>;
}

type Target = { host: string; port: number } | { path: string };

/** The largest chunk we send: a bigger one from the source is split, so backpressure works in small steps. */
const MAX_CHUNK = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * `tcp://host:port`, `unix:///path/to/socket` or an absolute socket path (`/run/clamav/clamd.ctl`).
 *
 * @example
 * parseClamavUrl('tcp://127.0.0.1:3310'); // { host: '127.0.0.1', port: 3310 }
 * parseClamavUrl('unix:///run/clamav/clamd.ctl'); // { path: '/run/clamav/clamd.ctl' }
 */
export function parseClamavUrl(url: string): { host: string; port: number } | { path: string } {
  const shown = url.replace(/\/\/[^/@]*@/, '//…@'); // never a password in a message
  const refuse = (why: string) => new Error(`CLAMAV_URL "${shown}" ${why}: it must be tcp://host:port, unix:///path/to/socket or an absolute socket path`);
  if (url.startsWith('/')) return { path: url };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw refuse('is not a URL');
  }
  if (parsed.username || parsed.password || parsed.search || parsed.hash) throw refuse('has parts clamd has no use for');
  if (parsed.protocol === 'tcp:') {
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(parsed.port);
    if (!host) throw refuse('has no host');
    if (!parsed.port || !Number.isInteger(port) || port < 1 || port > 65_535) throw refuse('has no valid port');
    if (parsed.pathname !== '' && parsed.pathname !== '/') throw refuse('has a path');
    return { host, port };
  }
  if (parsed.protocol === 'unix:') {
    if (parsed.host) throw refuse('names a host (write unix:///path, three slashes)');
    const path = decodeURIComponent(parsed.pathname);
    if (path === '/' || path.endsWith('/')) throw refuse('has no socket path');
    return { path };
  }
  throw refuse(`has the scheme ${parsed.protocol}`);
}

/** A scanner talking to the clamd at `url` (parseClamavUrl's forms); `timeoutMs` of inactivity fails a scan. */
export function clamdScanner(url: string, options: { timeoutMs?: number } = {}): EvidenceScanner {
  const target = parseClamavUrl(url);
  const describe = 'path' in target ? `unix://${target.path}` : `tcp://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const ping = async () => {
    const connection = await connect(target, describe, timeoutMs);
    connection.write(Buffer.from('zPING\0'));
    const { text, error } = await connection.reply;
    if (text !== 'PONG') throw unavailable(describe, error, text ? `answered PING with "${text.slice(0, 200)}"` : 'did not answer PING');
  };
  return {
    describe,
    async scan(content) {
      const connection = await connect(target, describe, timeoutMs);
      connection.write(Buffer.from('zINSTREAM\0'));
      let sent = 0;
      const source = content instanceof Readable ? content.iterator({ destroyOnReturn: false }) : content;
      try {
        // Leaving the loop early (clamd replied or hung up) stops reading the source without destroying it.
        send: for await (const chunk of source) {
          const bytes = toBuffer(chunk);
          for (let offset = 0; offset < bytes.length; offset += MAX_CHUNK) {
            const part = bytes.subarray(offset, offset + MAX_CHUNK);
            const frame = Buffer.allocUnsafe(4 + part.length);
            frame.writeUInt32BE(part.length, 0);
            part.copy(frame, 4);
            if (!(await connection.send(frame))) break send;
            sent += part.length;
          }
        }
      } catch (error) {
        connection.close();
        throw error;
      }
      const complete = await connection.send(Buffer.alloc(4));
      const { text, error } = await connection.reply;
      const found = /^stream: (.+) FOUND$/.exec(text);
      // With AlertExceedsMax, clamd reports a file it could not scan whole (past MaxFileSize, MaxScanSize or a
      // recursion limit) as Heuristics.Limits.Exceeded.*: not a virus, not clean either.
      if (found?.[1]?.startsWith('Heuristics.Limits.Exceeded')) throw new ScannerUnavailableError('scan_limit_exceeded', `clamd at ${describe} could not scan it whole (${found[1]}): raise its MaxFileSize and MaxScanSize to at least EVIDENCE_MAX_BYTES`);
      if (found) return { clean: false, signature: found[1]! };
      // Clean only once clamd has read it all: an OK before the end would be about part of the file.
      if (text === 'stream: OK' && complete) return { clean: true };
      const at = `${describe} stopped reading the stream (${megabytes(sent)} sent)`;
      if (/size limit exceeded/i.test(text)) throw new ScannerUnavailableError('scan_limit_exceeded', `clamd at ${at}: ${text}`, { cause: error });
      if (!complete && !text && !(error instanceof ScannerUnavailableError)) {
        // clamd answers its size limit and closes with our data unread, so we get a reset. When our next write
        // hits it first, Node destroys the socket and the answer it had received is lost: a clamd that hung
        // up mid-stream yet answers PING did so at its StreamMaxLength.
        if (await ping().then(() => true, () => false)) {
          throw new ScannerUnavailableError('scan_limit_exceeded', `clamd at ${at} and hung up (${errorCode(error)}), yet answers PING: over its StreamMaxLength`, { cause: error });
        }
      }
      if (text) throw unavailable(describe, error, complete ? `gave no verdict: "${text.slice(0, 200)}"` : `answered before the end of the stream: "${text.slice(0, 200)}"`);
      throw unavailable(describe, error, complete ? 'closed the connection without a verdict' : `hung up after ${megabytes(sent)} without a verdict`);
    },
    ping,
  };
}

function unavailable(describe: string, error: Error | undefined, what: string): ScannerUnavailableError {
  if (error instanceof ScannerUnavailableError) return error;
  return new ScannerUnavailableError('scanner_unavailable', `clamd at ${describe} ${what}${error ? ` (${errorCode(error)})` : ''}`, { cause: error });
}

interface Connection {
  /** Writes without waiting (the command). */
  write(data: Buffer): void;
  /** Writes, then waits while the socket's buffer is full; false when clamd has replied or the connection ended. */
  send(data: Buffer): Promise<boolean>;
  readonly finished: boolean;
  /** clamd's reply without its NUL, once it is complete (NUL) or the connection ended; never rejects. */
  readonly reply: Promise<{ text: string; error: Error | undefined }>;
  close(): void;
}

function connect(target: Target, describe: string, timeoutMs: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = 'path' in target ? net.createConnection({ path: target.path }) : net.createConnection({ host: target.host, port: target.port });
    let connected = false;
    let finished = false;
    let error: Error | undefined;
    const received: Buffer[] = [];
    let settle: (reply: { text: string; error: Error | undefined }) => void = () => {};
    const reply = new Promise<{ text: string; error: Error | undefined }>((resolveReply) => (settle = resolveReply));
    const finish = () => {
      if (finished) return;
      finished = true;
      const all = Buffer.concat(received);
      const end = all.indexOf(0);
      settle({ text: all.subarray(0, end === -1 ? all.length : end).toString('utf8').trim(), error });
      socket.destroy();
    };
    socket.setTimeout(timeoutMs, () => {
      const seconds = timeoutMs / 1000;
      socket.destroy(new ScannerUnavailableError('scanner_unavailable', connected ? `clamd at ${describe} sent nothing for ${seconds} s` : `clamd at ${describe} did not accept the connection within ${seconds} s`));
    });
    socket.on('data', (data: Buffer) => {
      received.push(data);
      if (data.includes(0)) finish();
    });
    socket.on('error', (cause: Error) => {
      error ??= cause;
      if (!connected) reject(error instanceof ScannerUnavailableError ? error : new ScannerUnavailableError('scanner_unavailable', refusal(describe, cause), { cause }));
    });
    socket.on('close', finish);
    socket.once('connect', () => {
      connected = true;
      resolve({
        write: (data) => void socket.write(data),
        async send(data) {
          // Let the event loop read what clamd sent meanwhile (its size-limit answer) right before writing: a
          // write into its hang-up would destroy the socket with that answer unread.
          await new Promise<void>((resume) => setImmediate(resume));
          if (finished) return false;
          if (!socket.write(data)) {
            await new Promise<void>((resume) => {
              const done = () => {
                socket.off('drain', done).off('close', done);
                resume();
              };
              socket.on('drain', done).on('close', done);
            });
          }
          return !finished;
        },
        get finished() {
          return finished;
        },
        reply,
        close: () => socket.destroy(),
      });
    });
  });
}

function refusal(describe: string, cause: Error): string {
  const code = errorCode(cause);
  if (code === 'ECONNREFUSED') return `clamd at ${describe} refused the connection`;
  if (code === 'ENOENT') return `clamd at ${describe} is not there (no such socket)`;
  return `clamd at ${describe} could not be reached (${code})`;
}

function errorCode(error: Error | undefined): string {
  if (!error) return 'closed';
  return (error as NodeJS.ErrnoException).code ?? error.message;
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new TypeError(`scan() reads bytes, not ${typeof chunk}`);
}

function megabytes(bytes: number): string {
  return `${Math.round((bytes / (1024 * 1024)) * 10) / 10} MB`;
}
