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

const running = new Set<ChildProcess>();

/** Kills every child still running (call in afterEach, so a failed wait leaks no node or postgres process). */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;

/**
 * Spawns `projectx <args>`. With `viaScript`, runs `projectx <viaScript>` under script(1) instead, so that its
 * stdin and stdout are a terminal (pretty logs, progress lines, the shell's echo).
 */
export function spawnCli(args: readonly string[], options: { env: Record<string, string>; cwd?: string; viaScript?: readonly string[]; stdin?: 'pipe' }): RunningCli {
  const command = options.viaScript
    ? { file: 'script', args: ['-qec', [process.execPath, BIN, ...options.viaScript].map(quote).join(' '), '/dev/null'] }
    : { file: process.execPath, args: [BIN, ...args] };
  // `stdin: 'pipe'`: the test types (under script(1), into the pseudo-terminal).
  const child = spawn(command.file, command.args, { env: options.env, cwd: options.cwd, stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { predicate: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close', not 'exit': it comes after stdout and stderr have been read to the end.
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  // Only complete lines: a chunk may end in the middle of one.
  const parsed = (): Record<string, unknown>[] =>
    out
      .slice(0, out.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((line) => line.startsWith('{'))
      // A verb may print JSON over several lines (a '{' alone): only whole-line JSON objects are log lines.
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
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
