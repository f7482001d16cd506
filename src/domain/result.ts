/**
 * Expected refusals are values, not exceptions: an unauthorized click, a late decision, an unknown task id.
 * Bugs (a broken query, an impossible state) still throw. Every refusal has a stable snake_case code and a
 * message written for the person in the chat.
 */
export interface Refusal {
  code: string;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const refuse = <T = never>(code: string, message: string): Result<T> => ({ ok: false, refusal: { code, message } });
