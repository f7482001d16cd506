/**
 * A server under test in its own child process (so the load generator and PostgreSQL do not share its event
 * loop): the child sends its port over IPC when it listens, and shuts down on a `stop` message (a clean exit
 * lets `--cpu-prof` write its profile); past 15 s it is killed.
 */
import { fork } from 'node:child_process';
import { loadConfig, secretValues } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startService } from '../../src/main.ts';

export interface BenchServer {
  origin: string;
  pid: number | undefined;
}

export async function withForkedServer<T>(file: string, args: string[], options: { env?: Record<string, string>; execArgv?: string[] }, fn: (server: BenchServer) => Promise<T>): Promise<T> {
  const child = fork(file, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...options.env },
    execArgv: options.execArgv ?? process.execArgv,
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (message: { port: number }) => resolve(message.port));
      child.once('exit', (code) => reject(new Error(`${args.join(' ')} server exited (${code})`)));
    });
    return await fn({ origin: `http://127.0.0.1:${port}`, pid: child.pid });
  } finally {
    if (child.connected) child.send({ type: 'stop' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

/** `count` copies of the same server, each in its own process (as replicas behind a load balancer). */
export async function withForkedServers<T>(count: number, file: string, options: { env?: Record<string, string>; execArgv?: string[] }, fn: (servers: BenchServer[]) => Promise<T>, started: BenchServer[] = []): Promise<T> {
  if (started.length >= count) return fn(started);
  return withForkedServer(file, [], options, (server) => withForkedServers(count, file, options, fn, [...started, server]));
}

/** In the child: tell the parent the port, and stop cleanly when asked. */
export function serveBench(port: number, stop: () => Promise<unknown>): void {
  process.send?.({ port });
  process.on('message', (message: { type?: string }) => {
    if (message.type !== 'stop') return;
    void stop().finally(() => process.exit(0));
  });
}

/** In the child: the real service (role `web`, logs at warn to stderr) from `env`, served to the parent. */
export async function serveProjectx(env: Record<string, string | undefined>): Promise<void> {
  const full = { HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', ...env };
  const loaded = loadConfig(full);
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  const secrets = secretValues(full);
  const logger = createLogger({ level: loaded.config.LOG_LEVEL, destination: process.stderr, secrets });
  const service = await startService({ config: loaded.config, role: 'web', logger, secrets });
  serveBench(service.http.port, () => service.stop());
}

