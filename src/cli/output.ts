/**
 * How verbs print. A list prints one line per row for a person, or with `--json` one JSON array (of the same
 * rows as objects, dates as ISO strings) for a program; an empty list says so to a person and is `[]` to a
 * program.
 */
import type { Io } from './verb.ts';

export interface ListFormat<T> {
  /** The row for a person: one line (or a few, for a row with parts: a delivery and its attempts). */
  line(row: T): string | readonly string[];
  /** The row for a program: a plain object (no secrets: the same facts as the line, typed). */
  json(row: T): Record<string, unknown>;
  /** Said to a person when there is no row (what to do about it, when there is something). */
  empty: string;
}

/**
 * @example
 * printList(io, rows, { line: (u) => `${u.email}\t${u.roles.join(',')}`, json: (u) => ({ email: u.email, roles: u.roles }), empty: 'no users' });
 */
export function printList<T>(io: Io, rows: readonly T[], format: ListFormat<T>): void {
  if (io.json) {
    io.out(JSON.stringify(rows.map((row) => format.json(row)), null, 2));
    return;
  }
  for (const row of rows) {
    const lines = format.line(row);
    for (const line of typeof lines === 'string' ? [lines] : lines) io.out(line);
  }
  if (rows.length === 0) io.out(format.empty);
}
