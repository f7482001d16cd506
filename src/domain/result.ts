/**
 * Expected refusals are values, not exceptions: an unauthorized click, a late decision, an unknown task id.
 * Bugs (a broken query, an impossible state) still throw. Every refusal has a stable snake_case code and a
 * message written for the person in the chat.
 */
export interface Refusal {
  code: string;
  message: string;
  /** For remote refusals: come back no sooner than this (a 429's Retry-After, a pacing slot). */
  retryAfterSeconds?: number;
  /** For remote refusals: trying again cannot succeed (unknown channel, revoked token). */
  permanent?: boolean;
}

export type Result<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const refuse = <T = never>(code: string, message: string, extra: Pick<Refusal, 'retryAfterSeconds' | 'permanent'> = {}): Result<T> => ({
  ok: false,
  refusal: { code, message, ...extra },
});
