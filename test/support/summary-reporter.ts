/**
 * Prints one plain closing line, `tests: N passed, N failed, N skipped`, after vitest's own summary, so that
 * CI logs (and tools that read them) have a colour-free count to go by.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const count = (state: 'passed' | 'failed' | 'skipped') =>
      testModules.reduce((total, module) => total + [...module.children.allTests(state)].length, 0);
    // Files that failed to load have no test cases but still failed.
    const brokenFiles = testModules.filter((module) => module.state() === 'failed' && [...module.children.allTests()].length === 0).length;
    process.stdout.write(`\ntests: ${count('passed')} passed, ${count('failed') + brokenFiles} failed, ${count('skipped')} skipped\n`);
  }
}
