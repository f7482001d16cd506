import { describe, expect, it } from 'vitest';
import { createMetrics, registerCollectedGauge, sharedRead } from '../src/metrics.ts';

describe('collected gauges', () => {
  it('gauges built from one shared read cost one read per scrape, and each scrape reads afresh', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let reads = 0;
    const read = sharedRead(async () => {
      reads++;
      await new Promise((resolve) => setImmediate(resolve)); // a database round trip, as it were
      return [{ job: 'a', count: 3, age: 7 }];
    });
    registerCollectedGauge(metrics, { name: 'test_count', help: 'count', labelNames: ['job'] as const }, async () => (await read()).map((row) => ({ labels: { job: row.job }, value: row.count })));
    registerCollectedGauge(metrics, { name: 'test_age', help: 'age', labelNames: ['job'] as const }, async () => (await read()).map((row) => ({ labels: { job: row.job }, value: row.age })));

    const first = await metrics.registry.metrics();
    expect(first).toContain('test_count{job="a"} 3');
    expect(first).toContain('test_age{job="a"} 7');
    expect(reads).toBe(1);
    await metrics.registry.metrics();
    expect(reads).toBe(2);
  });
});
