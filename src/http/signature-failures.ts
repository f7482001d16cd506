/**
 * The one vocabulary for requests refused by a signature check, shared by every surface that verifies its
 * callers (Slack, partner webhooks, connector webhooks; Teams' `teams_auth_failures_total{reason}` next). Each
 * failure has one code, used twice: as the `code` of the 401 body the sender sees and as the `reason` label of
 * the surface's failure counter (`slack_signature_failures_total{reason}`, `webhook_failures_total{partner,reason}`,
 * `connector_webhooks_total{connector,outcome}`), so a sender's error log and our dashboard name the same thing.
 *
 * The verifiers return these codes themselves (pure functions of secret, headers, raw body and now); a surface
 * counts the code and answers `signatureFailureResponse(c, code)`. A new surface with a failure none of these
 * describes adds its code here, with its message. Messages say what was wrong, never the signature itself.
 */
import type { Context } from 'hono';
import { type ErrorBody, errorBody } from './errors.ts';

/** How far a signed timestamp may be from our clock, either way (Slack's and Standard Webhooks' 5 minutes). */
export const SIGNATURE_TOLERANCE_SECONDS = 5 * 60;

/** Every signature failure, by code, with the message its 401 body carries. */
export const SIGNATURE_FAILURES = {
  missing_signature: 'the request has no signature: a signature or timestamp header is missing',
  malformed_signature: 'the signature or timestamp header is not in the expected format',
  invalid_signature: 'the request signature could not be verified with any valid secret',
  stale_timestamp: `the signed timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS / 60} minutes from our clock; sign each attempt with the current time`,
} as const satisfies Record<string, string>;

export type SignatureFailure = keyof typeof SIGNATURE_FAILURES;

/** The codes, in the order a verifier checks them. */
export const SIGNATURE_FAILURE_CODES = Object.keys(SIGNATURE_FAILURES) as readonly SignatureFailure[];

/** The outcome of a signature check: the failure's code when it fails. */
export type SignatureCheck = { ok: true } | { ok: false; reason: SignatureFailure };

/**
 * The 401 body for a failed signature check.
 *
 * @example signatureFailureBody('stale_timestamp') // { error: { code: 'stale_timestamp', message: 'the signed timestamp is …' } }
 */
export function signatureFailureBody(reason: SignatureFailure): ErrorBody {
  return errorBody(reason, SIGNATURE_FAILURES[reason]);
}

/**
 * Answers a failed signature check: 401 with the failure's code and message.
 *
 * @example if (!checked.ok) { failures.inc({ reason: checked.reason }); return signatureFailureResponse(c, checked.reason); }
 */
export function signatureFailureResponse(c: Context, reason: SignatureFailure): Response {
  return c.json(signatureFailureBody(reason), 401);
}
