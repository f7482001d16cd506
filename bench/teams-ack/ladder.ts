/**
 * teams-ack's rows: the shared ladder (bench/lib/ladder.ts) with the p99 of each kind of activity (messages and
 * invokes) beside the CPU cells.
 */
import { type Ladder as BaseLadder, type Step as BaseStep, cpuShares, runLadder as runBaseLadder } from '../lib/ladder.ts';
import type { BenchServer } from '../lib/server.ts';

export { clientNote, cores, cpuUsage, fmtKnee, groupsOf, noisy, revision, sampleCpu, settle } from '../lib/ladder.ts';

export interface Step extends BaseStep {
  /** p99 by kind, from when the request was built to its answer (ms; NaN when none of that kind). */
  kindP99: { message: number; invoke: number };
}
export type Ladder = BaseLadder<Step>;

export const runLadder = (server: BenchServer, rates: readonly number[], measure: (rate: number) => Promise<Omit<Step, 'label'>>): Promise<Ladder> =>
  runBaseLadder<Step>(server, rates, measure, (step) => ` (message ${step.kindP99.message.toFixed(1)}, invoke ${step.kindP99.invoke.toFixed(1)})`);

export const CPU_HEADERS = ['p99 ms message / invoke', 'CPU cores: client / server / pg / other', 'server+pg CPU µs/activity'];

export function cpuCells(step: Step): string[] {
  return [`${step.kindP99.message.toFixed(1)} / ${step.kindP99.invoke.toFixed(1)}`, ...cpuShares(step)];
}

/** Server + PostgreSQL CPU per activity, median over the steps that have it. */
export function perActivityCpu(steps: Step[]): number | undefined {
  const values = steps.filter((step) => step.cpu).map((step) => Number(cpuShares(step)[1])).sort((a, b) => a - b);
  return values.length > 0 ? values[Math.floor(values.length / 2)]! : undefined;
}
