/**
 * What PostgreSQL text and jsonb can hold: no NUL character, and well-formed UTF-16 (a lone surrogate has no
 * UTF-8 form; JSON can spell both as escapes). Inbound paths refuse what fails this before it reaches a
 * statement, where it would fail the whole batch it was written with.
 */

/** Can this string be stored as text? */
export function storable(value: string): boolean {
  return !value.includes('\u0000') && value.isWellFormed();
}

/** Every string (and key) in a parsed JSON value is storable; a value nested deeper than `maxDepth` is not. */
export function storableDeep(value: unknown, maxDepth = Number.POSITIVE_INFINITY, depth = 0): boolean {
  if (depth > maxDepth) return false;
  if (typeof value === 'string') return storable(value);
  if (Array.isArray(value)) return value.every((item) => storableDeep(item, maxDepth, depth + 1));
  if (value !== null && typeof value === 'object') return Object.entries(value).every(([key, item]) => storable(key) && storableDeep(item, maxDepth, depth + 1));
  return true;
}
