/**
 * A real clamd for the tests, on 127.0.0.1 (and a Unix socket) with the committed two-signature database in
 * test/servers/clamav (EICAR only: no signatures can be downloaded here, and clamd refuses to start without
 * any). test/global-setup.ts starts one per run; a test may start its own (another StreamMaxLength, or one to
 * stop). Debian's clamav-daemon provides the binary (see the README's first section).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/fleet.ts';

export interface Clamd {
  /** `tcp://127.0.0.1:<port>` */
  url: string;
  /** Its Unix socket (the same clamd). */
  socketPath: string;
  stop(): Promise<void>;
}

const DATABASE_DIR = fileURLToPath(new URL('./clamav', import.meta.url));
const READY_WITHIN_MS = 20_000;

/**
 * Starts clamd with its config, log, socket and temporary files in `dir` (made if missing) and resolves once
 * it answers PING. `streamMaxLength` (clamd's syntax, e.g. `1M`) defaults to 26M: above our 25 MB
 * EVIDENCE_MAX_BYTES default, so only a test that lowers it sees clamd's size limit.
 */
export async function startClamd(dir: string, options: { streamMaxLength?: string; maxFileSize?: string } = {}): Promise<Clamd> {
  const binary = await findClamd();
  await mkdir(dir, { recursive: true });
  const logFile = path.join(dir, 'clamd.log');
  const socketPath = path.join(dir, 'clamd.sock');
  // The kernel's free port can be taken by someone else before clamd binds it: try another, twice.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, 'clamd.conf');
    await writeFile(conf, [
      `DatabaseDirectory ${DATABASE_DIR}`,
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      `LocalSocket ${socketPath}`,
      'Foreground yes',
      `StreamMaxLength ${options.streamMaxLength ?? '26M'}`,
      // What clamd scans of a file: all of what it may be sent (their defaults, 25M and 100M, would cut it short).
      `MaxFileSize ${options.maxFileSize ?? options.streamMaxLength ?? '26M'}`,
      `MaxScanSize ${options.maxFileSize ?? options.streamMaxLength ?? '26M'}`,
      // Without it, content past MaxFileSize/MaxScanSize passes unscanned as OK.
      'AlertExceedsMax yes',
      `TemporaryDirectory ${dir}`,
      `LogFile ${logFile}`,
      'LogVerbose no',
      '',
    ].join('\n'));
    const child = spawn(binary, [`--config-file=${conf}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-4000)));
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => resolve(`exited (${signal ?? code})`));
      child.once('error', (error) => resolve(`could not be started (${error.message})`));
    });
    const started = await waitForPong(port, exited);
    if (started === 'ready') return { url: `tcp://127.0.0.1:${port}`, socketPath, stop: () => stop(child) };
    await stop(child);
    const log = `${stderr}${await readFile(logFile, 'utf8').catch(() => '')}`;
    if (attempt < 3 && /Address already in use/.test(log)) continue;
    throw new Error(`clamd ${started} (${conf}); the end of its output:\n${log.split('\n').slice(-15).join('\n')}`);
  }
}

async function findClamd(): Promise<string> {
  const candidates = ['/usr/sbin/clamd', ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, 'clamd'))];
  for (const candidate of candidates) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  throw new Error('clamd is not installed (the tests scan files with a real clamd): install the Debian packages clamav and clamav-daemon (as in .ci/run: `sudo apt-get install -y --no-install-recommends clamav clamav-daemon ceph-mon ceph-osd radosgw`)');
}

/** Polls `zPING` until `PONG`; or how clamd failed (exited, or not ready in time). */
async function waitForPong(port: number, exited: Promise<string>): Promise<string> {
  let gone: string | undefined;
  void exited.then((how) => (gone = how));
  const deadline = Date.now() + READY_WITHIN_MS;
  while (Date.now() < deadline) {
    if (await ping(port)) return 'ready';
    if (gone) return gone;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return `did not answer PING within ${READY_WITHIN_MS / 1000} s`;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('connect', () => socket.write('zPING\0'));
    socket.on('data', (data) => (reply += data.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve(reply === 'PONG\0'));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
