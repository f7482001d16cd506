import { describe, expect, it } from 'vitest';
import { signSlackRequest, verifySlackSignature } from '../../../src/bot/slack/signature.ts';

const secret = '8f742231b10e8888abcd99yyyzzz85a5';
const now = new Date('2026-11-22T10:00:00Z');
const ts = Math.floor(now.getTime() / 1000);
const body = new TextEncoder().encode('token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fprojectx&text=help');

describe('verifySlackSignature', () => {
  const signed = signSlackRequest(secret, body, ts);
  const check = (overrides: Partial<Parameters<typeof verifySlackSignature>[0]> = {}) =>
    verifySlackSignature({ signingSecret: secret, timestamp: signed['x-slack-request-timestamp'], signature: signed['x-slack-signature'], rawBody: body, now, ...overrides });

  it('accepts the signature Slack would send', () => expect(check()).toEqual({ ok: true }));
  it('refuses a tampered body', () => expect(check({ rawBody: new TextEncoder().encode('token=x&text=approve') })).toEqual({ ok: false, reason: 'invalid_signature' }));
  it('refuses another secret', () => expect(check({ signingSecret: 'another-secret-entirely' })).toEqual({ ok: false, reason: 'invalid_signature' }));
  it('refuses a request older than 5 minutes, and one from the future', () => {
    expect(check({ now: new Date(now.getTime() + 301_000) })).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(check({ now: new Date(now.getTime() - 301_000) })).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(check({ now: new Date(now.getTime() + 299_000) })).toEqual({ ok: true });
  });
  it('refuses missing and malformed headers', () => {
    expect(check({ signature: undefined })).toEqual({ ok: false, reason: 'missing_signature' });
    expect(check({ timestamp: undefined })).toEqual({ ok: false, reason: 'missing_signature' });
    expect(check({ signature: 'v1=abc' })).toEqual({ ok: false, reason: 'malformed_signature' });
    expect(check({ signature: `v0=${'z'.repeat(64)}` })).toEqual({ ok: false, reason: 'malformed_signature' });
    expect(check({ timestamp: 'yesterday' })).toEqual({ ok: false, reason: 'malformed_signature' });
  });
  it('signs over the exact bytes (a re-encoded body does not verify)', () => {
    const reencoded = new TextEncoder().encode(new URLSearchParams(Buffer.from(body).toString()).toString().replace('%2F', '/'));
    expect(check({ rawBody: reencoded })).toEqual({ ok: false, reason: 'invalid_signature' });
  });
});
