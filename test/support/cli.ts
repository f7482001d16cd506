/** Runs the real `projectx` binary as a child process (with this Node), for end-to-end tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/projectx.js', import.meta.url));

export interface RunningCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first JSON log line matching `predicate` (rejects if the process exits first). */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnCli(args: readonly string[], options: { env: Record<string, string>; cwd?: string }): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { predicate: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const parsed = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    const lines = parsed();
    for (const waiter of [...waiters]) {
      const found = lines.find(waiter.predicate);
      if (found) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(found);
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForLog: (predicate) =>
      new Promise((resolve, reject) => {
        const found = parsed().find(predicate);
        if (found) return resolve(found);
        waiters.push({ predicate, resolve });
        void exited.then(({ code }) => reject(new Error(`projectx exited (${code}) before the expected log line:\n${out}\n${err}`)));
      }),
    exited,
  };
}
