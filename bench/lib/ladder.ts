/**
 * The ladder of rising rates every open-loop ack benchmark runs (slack-ack, teams-ack): before each step wait for
 * a quiet machine, run the step, run once more a failing step that ran while other processes took the CPU,
 * stop past 500 ms p99, at an error or when throughput falls behind. The knee is the highest rate with p99 <
 * 100 ms and zero errors before the first failing one. Rows carry where the CPU went (client / server /
 * PostgreSQL / other).
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { type CpuUsage, benchmarkGroups, cpuUsage, sampleCpu } from './cpu.ts';
import type { RateResult } from './rate.ts';
import type { BenchServer } from './server.ts';

export interface Step {
  label: string;
  result: RateResult;
  cpu: CpuUsage | undefined;
  note?: string;
}

export interface Ladder<S extends Step = Step> {
  steps: S[];
  knee: number;
  /** The ladder's top rate passed: the knee is at least this. */
  kneeCapped: boolean;
}

export const KNEE_P99_MS = 100;
const STOP_P99_MS = 500;
export const NOISY_CORES = 0.3;
const quietWaitMs = Number(process.env.BENCH_QUIET_WAIT_MS ?? (process.env.BENCH_QUICK === '1' ? 2000 : 10_000));
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const groupsOf = (server: BenchServer) => benchmarkGroups({ server: server.pid });
export const cores = availableParallelism();

export const clean = (r: RateResult) => r.errors === 0 && r.non2xx === 0;
export const passes = (r: RateResult) => clean(r) && r.p99ms < KNEE_P99_MS;

/**
 * Waits until the server has finished any backlog (it and PostgreSQL nearly idle) and the rest of this shared
 * machine is quiet, up to BENCH_QUIET_WAIT_MS.
 */
export async function settle(server: BenchServer): Promise<void> {
  const deadline = performance.now() + quietWaitMs;
  for (;;) {
    const a = sampleCpu();
    await pause(1000);
    const b = sampleCpu();
    if (!a || !b) return;
    const usage = cpuUsage(a, b, groupsOf(server));
    const ours = (usage.groups.server ?? 0) + (usage.groups.postgres ?? 0);
    if ((ours < 0.15 && usage.other < NOISY_CORES) || performance.now() > deadline) return;
  }
}

/** Notes on the client's own health: requests it shed, or sending far behind schedule (it was short of CPU). */
export const clientNote = (r: RateResult) =>
  [r.shed > 0 ? `${r.shed} shed by the client (too many waiting)` : '', r.sendLagMaxMs > 100 ? `client sent up to ${Math.round(r.sendLagMaxMs)} ms late` : ''].filter(Boolean).join('; ');
export const noisy = (cpu: CpuUsage | undefined) => (cpu && cpu.other >= NOISY_CORES ? `noisy: other processes used ${cpu.other.toFixed(2)} cores` : '');

/** A step's CPU cells: cores by group (client / server / pg / other), and server + PostgreSQL CPU µs per request. */
export function cpuShares(step: Step): [string, string] {
  const { cpu, result } = step;
  if (!cpu) return ['n/a', 'n/a'];
  const g = (name: string) => cpu.groups[name] ?? 0;
  const perRequest = ((g('server') + g('postgres')) * cpu.seconds * 1e6) / Math.max(1, result.sent);
  return [`${g('client').toFixed(2)} / ${g('server').toFixed(2)} / ${g('postgres').toFixed(2)} / ${cpu.other.toFixed(2)}`, perRequest.toFixed(0)];
}

/**
 * Rising rates until p99 passes STOP_P99_MS, an error or non-2xx appears, or throughput falls behind.
 * `measure` runs one step at a rate; `describe` adds to its progress line (p99 by kind, say).
 */
export async function runLadder<S extends Step>(server: BenchServer, rates: readonly number[], measure: (rate: number) => Promise<Omit<S, 'label'>>, describe: (step: S) => string = () => ''): Promise<Ladder<S>> {
  const steps: S[] = [];
  let knee = 0;
  let failed = false;
  for (const rate of rates) {
    let step: S;
    for (let attempt = 1; ; attempt++) {
      await settle(server);
      step = { label: `${rate}/s`, ...(await measure(rate)) } as S;
      const { result, cpu } = step;
      console.error(`  ${rate}/s: p99 ${result.p99ms.toFixed(1)} ms${describe(step)}, ${Math.round(result.throughput)}/s, errors ${result.errors}, non-2xx ${result.non2xx}${cpu ? `, other CPU ${cpu.other.toFixed(2)}` : ''}`);
      // This machine is shared: a rung that fails while something else took the CPU is run once more.
      if (passes(result) || !noisy(cpu) || attempt > 1) break;
      steps.push({ ...step, note: [`${noisy(cpu)}; run again`, clientNote(result)].filter(Boolean).join('; ') });
    }
    const { result, cpu } = step;
    const ok = passes(result);
    if (ok && !failed) knee = rate;
    if (!ok) failed = true;
    const stop = result.p99ms > STOP_P99_MS || !clean(result) || result.throughput < rate * 0.9;
    step.note = [ok ? '' : `over the knee (p99 ≥ ${KNEE_P99_MS} ms or errors)`, stop ? 'ladder stops' : '', noisy(cpu), clientNote(result)].filter(Boolean).join('; ');
    steps.push(step);
    if (stop) break;
  }
  return { steps, knee, kneeCapped: !failed };
}

export const fmtKnee = (knee: number, capped: boolean) => (capped ? `≥ ${knee}/s (never failed: the ladder's top)` : `${knee}/s`);

/** The commit measured, and whether src/ had uncommitted changes. */
export function revision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: import.meta.dirname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', '../../src').length > 0 ? ' + uncommitted src changes' : ''}`;
  } catch {
    return 'unknown revision';
  }
}

export { cpuUsage, sampleCpu };
