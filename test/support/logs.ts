/** A real pino logger writing into memory, so tests can read exactly what would have been written. */
import { Writable } from 'node:stream';
import { type Logger, createLogger } from '../../src/logger.ts';

export interface CapturedLogs {
  logger: Logger;
  /** Everything written, as raw text. */
  text: () => string;
  /** Every line, parsed. */
  lines: () => Record<string, unknown>[];
}

export function captureLogs(options: { level?: string; secrets?: readonly string[] } = {}): CapturedLogs {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const logger = createLogger({ level: options.level ?? 'debug', secrets: options.secrets ?? [], destination });
  const text = () => chunks.join('');
  return {
    logger,
    text,
    lines: () =>
      text()
        .split('\n')
        .filter((line) => line.trim().length > 0)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
