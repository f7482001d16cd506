/**
 * Slack request signing (v0): HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the signing secret, compared in
 * constant time, and a timestamp within five minutes of now (replays of old requests are refused). A pure
 * function of (secret, headers, raw body, now), so it is tested without a server. Failures are the shared codes
 * of src/http/signature-failures.ts (the 401 body and the metric's reason alike).
 * https://api.slack.com/authentication/verifying-requests-from-slack
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SIGNATURE_TOLERANCE_SECONDS, type SignatureCheck } from '../../http/signature-failures.ts';

export interface SignatureInput {
  signingSecret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: Uint8Array;
  now: Date;
  /** Allowed clock skew either way (Slack's guidance: 5 minutes). */
  toleranceSeconds?: number;
}

export function verifySlackSignature(input: SignatureInput): SignatureCheck {
  const { timestamp, signature } = input;
  if (!timestamp || !signature) return { ok: false, reason: 'missing_signature' };
  if (!/^\d{1,12}$/.test(timestamp) || !/^v0=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'malformed_signature' };
  const skew = Math.abs(input.now.getTime() / 1000 - Number(timestamp));
  if (skew > (input.toleranceSeconds ?? SIGNATURE_TOLERANCE_SECONDS)) return { ok: false, reason: 'stale_timestamp' };
  const expected = createHmac('sha256', input.signingSecret).update(`v0:${timestamp}:`).update(input.rawBody).digest();
  const given = Buffer.from(signature.slice(3), 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? { ok: true } : { ok: false, reason: 'invalid_signature' };
}

/** Signs a body the way Slack does (for tests and the benchmark's client). */
export function signSlackRequest(signingSecret: string, rawBody: string | Uint8Array, timestamp: number): { 'x-slack-request-timestamp': string; 'x-slack-signature': string } {
  const digest = createHmac('sha256', signingSecret).update(`v0:${timestamp}:`).update(rawBody).digest('hex');
  return { 'x-slack-request-timestamp': String(timestamp), 'x-slack-signature': `v0=${digest}` };
}
