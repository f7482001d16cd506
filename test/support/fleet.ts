/**
 * Processes of the real `projectx start` binary in given roles, on one database, each on a port of its own
 * that it keeps across restarts (picked free once, on 127.0.0.1), for scale-out tests: start, SIGKILL, start
 * again, and wait until it answers `GET /readyz` (logs may be quiet: LOG_LEVEL=warn prints no "listening").
 *
 * @example
 * const web = await fleetMember({ name: 'web-a', role: 'web', env, cwd });
 * await web.start();
 * await web.kill(); // as a lost host: no shutdown, nothing flushed
 * await web.start(); // same port, so senders find it again
 */
import { type AddressInfo, createServer } from 'node:net';
import { setTimeout as pause } from 'node:timers/promises';
import { type RunningCli, spawnCli } from './cli.ts';

export type FleetRole = 'web' | 'worker' | 'all';

export interface FleetMember {
  name: string;
  role: FleetRole;
  /** http://127.0.0.1:<port>, the same for every run of this member. */
  url: string;
  /** The process of the latest start (undefined before the first). */
  readonly run: RunningCli | undefined;
  /** How many times it was started. */
  readonly starts: number;
  /** Spawns the process and resolves once /readyz answers 200 (rejects if it exits first or is not ready in time). */
  start(): Promise<void>;
  /** SIGKILL, then waits until the process is gone. */
  kill(): Promise<void>;
}

/** A port nothing listens on right now (bound on 127.0.0.1 and released). */
export async function freePort(): Promise<number> {
  const holder = createServer();
  await new Promise<void>((resolve, reject) => holder.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = holder.address() as AddressInfo;
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  return port;
}

export async function fleetMember(input: { name: string; role: FleetRole; env: Record<string, string>; cwd: string; readyWithinMs?: number }): Promise<FleetMember> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const readyWithinMs = input.readyWithinMs ?? 60_000;
  let run: RunningCli | undefined;
  let starts = 0;

  const ready = async (current: RunningCli): Promise<void> => {
    const deadline = Date.now() + readyWithinMs;
    for (;;) {
      if (current.child.exitCode !== null || current.child.signalCode !== null) {
        throw new Error(`${input.name} exited (${current.child.exitCode ?? current.child.signalCode}) before it was ready:\n${current.stdout()}\n${current.stderr()}`);
      }
      const status = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
        async (res) => (await res.arrayBuffer(), res.status),
        () => 0,
      );
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`${input.name} was not ready within ${readyWithinMs} ms (last /readyz: ${status || 'no answer'}):\n${current.stdout()}\n${current.stderr()}`);
      await pause(100);
    }
  };

  return {
    name: input.name,
    role: input.role,
    url,
    get run() {
      return run;
    },
    get starts() {
      return starts;
    },
    async start() {
      if (run && run.child.exitCode === null && run.child.signalCode === null) throw new Error(`${input.name} is already running`);
      starts++;
      run = spawnCli(['start', '--role', input.role], { env: { ...input.env, HOST: '127.0.0.1', PORT: String(port) }, cwd: input.cwd });
      await ready(run);
    },
    async kill() {
      if (!run) return;
      run.child.kill('SIGKILL');
      await run.exited;
    },
  };
}
