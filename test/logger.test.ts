import { describe, expect, it } from 'vitest';
import { runWithContext } from '../src/logger.ts';
import { captureLogs } from './support/logs.ts';

const SEEDED = 'xoxb-seeded-secret-7f3a9c';

describe('logger redaction', () => {
  it('redacts credential-looking keys at any depth', () => {
    const { logger, text, lines } = captureLogs();
    logger.info(
      {
        headers: { authorization: 'Bearer abc.def.ghi', cookie: 'sid=s3cr3t', 'x-slack-signature': 'v0=deadbeef', 'content-type': 'json' },
        upstream: { response: { access_token: 'at-123456', refresh_token: 'rt-654321' } },
        config: { password: 'pw-999999', clientSecret: 'cs-888888', apiKey: 'ak-777777' },
        webhook: { 'webhook-signature': 'v1,abcdef==' },
      },
      'outbound call',
    );
    const out = text();
    for (const leaked of ['abc.def.ghi', 's3cr3t', 'deadbeef', 'at-123456', 'rt-654321', 'pw-999999', 'cs-888888', 'ak-777777', 'abcdef==']) {
      expect(out).not.toContain(leaked);
    }
    const [line] = lines();
    expect(line).toMatchObject({ headers: { authorization: '[redacted]', 'content-type': 'json' }, msg: 'outbound call' });
  });

  it('scrubs configured secret values wherever they appear: messages, errors, URLs, JSON-escaped', () => {
    const { logger, text } = captureLogs({ secrets: [SEEDED, 'pa"ss\\word-123'] });
    logger.info(`calling https://slack.test/api?token=${SEEDED}`);
    logger.error({ err: new Error(`invalid_auth for ${SEEDED}`) }, 'failed');
    logger.warn({ note: { deeply: { nested: [`x${SEEDED}y`] } } }, 'odd');
    logger.info({ quoted: 'pa"ss\\word-123' }, 'escaped');
    const out = text();
    expect(out).not.toContain(SEEDED);
    expect(out).not.toContain('pa\\"ss\\\\word-123');
    expect(out.match(/\[redacted\]/g)?.length).toBeGreaterThanOrEqual(5);
  });

  it('carries the ambient request context on every line', async () => {
    const { logger, lines } = captureLogs();
    await runWithContext({ requestId: 'req-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, async () => {
      await Promise.resolve();
      logger.info('inside');
    });
    logger.info('outside');
    const [inside, outside] = lines();
    expect(inside).toMatchObject({ requestId: 'req-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    expect(outside?.requestId).toBeUndefined();
  });
});
