/**
 * Files a test needs on disk go under the run's temp root (made and removed by test/global-setup.ts), so a
 * run leaves nothing behind in the temp directory, whatever a test forgets to clean.
 *
 * @example
 * const store = new LocalEvidenceStore(tempPath('evidence')); // <run root>/evidence-1a2b3c4d, made when first used
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { inject } from 'vitest';
import { clamdScanner } from '../../src/connectors/evidence-stores/clamd.ts';
import { LocalEvidenceStore } from '../../src/connectors/evidence-stores/local.ts';
import { type EvidencePipeline, evidencePipeline } from '../../src/connectors/evidence-stores/pipeline.ts';

/** A fresh path under the run's temp root, not created (for what makes its own directory or file). */
export function tempPath(prefix: string, extension = ''): string {
  return path.join(inject('tempRoot'), `${prefix}-${randomBytes(4).toString('hex')}${extension}`);
}

/**
 * An evidence pipeline into a fresh local store under the run's temp root, scanning with the run's clamd
 * (test/global-setup.ts) unless `scanner` is given (`scanner: undefined`: no scanner).
 *
 * @example
 * const unscanned = localEvidencePipeline('evidence', { scanner: undefined });
 */
export function localEvidencePipeline(prefix: string, options: Omit<Parameters<typeof evidencePipeline>[1], 'stagingDir'> = {}): EvidencePipeline {
  const scanner = 'scanner' in options ? options.scanner : clamdScanner(inject('clamav').url);
  return evidencePipeline(new LocalEvidenceStore(tempPath(prefix)), { stagingDir: tempPath(`${prefix}-staging`), ...options, scanner });
}
