/**
 * Where the CPU went during a benchmark step, from Linux's /proc accounting: the machine's busy time, and the
 * part of it spent by each group of processes (the load generator, the server under test, PostgreSQL), the
 * rest being "other" (on this shared machine: whatever else is running). Read at a step's start and end only,
 * so it costs nothing during the step. Off Linux, `sampleCpu` returns undefined and callers skip the numbers.
 *
 * CPU time of a process that exits between the two samples is lost (our processes live through a step).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Linux reports /proc times in USER_HZ, 100 per second on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

interface ProcInfo {
  ppid: number;
  comm: string;
  ticks: number;
}

export interface CpuSample {
  at: number;
  busyTicks: number;
  procs: Map<number, ProcInfo>;
}

export interface CpuUsage {
  seconds: number;
  /** Cores the machine has, and how many were busy on average. */
  cores: number;
  busy: number;
  /** Average cores used by each group, plus `other` (everything outside the groups, kernel time included). */
  groups: Record<string, number>;
  other: number;
}

export function sampleCpu(): CpuSample | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    const busyTicks = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
    const procs = new Map<number, ProcInfo>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' '); // fields[0] is field 3 (state)
      procs.set(Number(entry), { ppid: Number(fields[1]), comm, ticks: Number(fields[11]) + Number(fields[12]) });
    }
    return { at: performance.now(), busyTicks, procs };
  } catch {
    return undefined;
  }
}

/**
 * CPU used between two samples. `classify` names the group of a process (given its pid and the chain of its
 * ancestors' pids and names), or returns undefined for "other".
 */
export function cpuUsage(a: CpuSample, b: CpuSample, classify: (pid: number, info: ProcInfo, ancestors: { pid: number; comm: string }[]) => string | undefined): CpuUsage {
  const seconds = (b.at - a.at) / 1000;
  const perSecond = (ticks: number) => ticks / TICKS_PER_SECOND / seconds;
  const groups: Record<string, number> = {};
  let grouped = 0;
  for (const [pid, info] of b.procs) {
    const ancestors: { pid: number; comm: string }[] = [];
    for (let at = info.ppid; at > 1 && ancestors.length < 32; at = b.procs.get(at)?.ppid ?? 0) ancestors.push({ pid: at, comm: b.procs.get(at)?.comm ?? '' });
    const group = classify(pid, info, ancestors);
    if (group === undefined) continue;
    const ticks = info.ticks - (a.procs.get(pid)?.ticks ?? 0);
    groups[group] = (groups[group] ?? 0) + perSecond(ticks);
    grouped += ticks;
  }
  const busyTicks = b.busyTicks - a.busyTicks;
  return { seconds, cores: availableParallelism(), busy: perSecond(busyTicks), groups, other: Math.max(0, perSecond(busyTicks - grouped)) };
}

/** Groups for a benchmark laid out as: this process (the client), forked servers (a group may be several), PostgreSQL under either. */
export function benchmarkGroups(servers: Record<string, number | readonly (number | undefined)[] | undefined>) {
  return (pid: number, info: ProcInfo, ancestors: { pid: number; comm: string }[]): string | undefined => {
    const lineage = [pid, ...ancestors.map((ancestor) => ancestor.pid)];
    if (!lineage.includes(process.pid)) return undefined;
    if (info.comm === 'postgres') return 'postgres';
    for (const [name, pids] of Object.entries(servers)) for (const serverPid of Array.isArray(pids) ? pids : [pids]) if (serverPid !== undefined && lineage.includes(serverPid)) return name;
    return 'client';
  };
}
