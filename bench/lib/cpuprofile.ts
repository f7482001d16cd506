/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time by function and by where the code lives
 * (a package in node_modules, our src/, node internals, GC, idle), and inclusive time of our own functions.
 *
 *   node bench/lib/cpuprofile.ts <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  byFunction: { name: string; ms: number }[];
  byArea: { area: string; ms: number }[];
  /** Inclusive time of functions in src/ (time with the function anywhere on the stack). */
  inclusiveSrc: { name: string; ms: number }[];
}

export function areaOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return '(program: native, not attributed)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.includes('/src/')) return `src/${url.split('/src/')[1]!.split('/').slice(0, -1).join('/')}`;
  if (url.startsWith('node:') || url === '') return 'node internals';
  return url;
}

export function summarise(profile: Profile): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  const label = (node: ProfileNode) => `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${node.callFrame.lineNumber + 1}`;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    total += us;
    fn.set(label(node), (fn.get(label(node)) ?? 0) + us);
    const where = areaOf(node.callFrame.url, node.callFrame.functionName);
    area.set(where, (area.get(where) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!;
      if (!frame.callFrame.url.includes('/src/')) continue;
      const name = label(frame);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
  const sorted = (map: Map<string, number>) => [...map].map(([name, us]) => ({ name, ms: us / 1000 })).sort((a, b) => b.ms - a.ms);
  return {
    totalMs: total / 1000,
    byFunction: sorted(fn),
    byArea: sorted(area).map(({ name, ms }) => ({ area: name, ms })),
    inclusiveSrc: sorted(inclusive),
  };
}

if (import.meta.main) {
  const [file, topArg] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node bench/lib/cpuprofile.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const top = Number(topArg ?? 25);
  const summary = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  const pct = (ms: number) => `${((100 * ms) / summary.totalMs).toFixed(1)}%`;
  console.log(`profile: ${(summary.totalMs / 1000).toFixed(1)} s sampled\n\nself time by area:`);
  for (const { area, ms } of summary.byArea.slice(0, top)) console.log(`  ${pct(ms).padStart(6)}  ${area}`);
  console.log('\nself time by function:');
  for (const { name, ms } of summary.byFunction.slice(0, top)) console.log(`  ${pct(ms).padStart(6)}  ${name}`);
  console.log('\ninclusive time of src/ functions:');
  for (const { name, ms } of summary.inclusiveSrc.slice(0, top)) console.log(`  ${pct(ms).padStart(6)}  ${name}`);
}
