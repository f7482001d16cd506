/**
 * The `state` of an OAuth authorization-code flow we start (Slack's install, a connector's consent): signed
 * (HMAC-SHA256 with a secret of the flow), expiring in 10 minutes, and bound to the browser that started it by a
 * nonce the caller also sets in a cookie (CSRF: a callback in another browser is refused). It may carry one id
 * (a single-use link's), inside the signature so it cannot be swapped.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const OAUTH_STATE_TTL_MS = 10 * 60_000;

function sign(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(payload).digest('base64url');
}

/** A signed state, and the nonce to set in the browser's cookie. */
export function issueState(secret: string, now: Date, linkId?: string): { state: string; nonce: string } {
  const nonce = randomBytes(16).toString('base64url');
  const payload = [nonce, now.getTime() + OAUTH_STATE_TTL_MS, ...(linkId ? [linkId] : [])].join('.');
  return { state: `${payload}.${sign(secret, payload)}`, nonce };
}

/** Whether a state came back intact, in time, to the browser that started the flow (constant-time signature check). */
export function checkState(secret: string, state: string, cookieNonce: string | undefined, now: Date): 'ok' | 'invalid' | 'expired' | 'wrong_browser' {
  const parts = state.split('.');
  const [nonce, expires] = parts;
  const signature = parts.at(-1);
  if (!nonce || !expires || !signature || parts.length < 3 || parts.length > 4) return 'invalid';
  const expected = Buffer.from(sign(secret, parts.slice(0, -1).join('.')));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid';
  if (Number(expires) < now.getTime()) return 'expired';
  if (!cookieNonce || cookieNonce !== nonce) return 'wrong_browser';
  return 'ok';
}

/** The id a checked state carries (the single-use link the flow started from), if any. */
export function stateLink(state: string): string | undefined {
  const parts = state.split('.');
  return parts.length === 4 ? parts[2] : undefined;
}
