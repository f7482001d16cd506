/**
 * The email bridge's pure pieces: which mailbox an address names, how a notification reads as an email, where
 * a failed chat notification falls back to, how the relay's failures are sorted, and how a message's
 * Message-ID and a partner's JSON are found.
 */
import { describe, expect, it } from 'vitest';
import type { Message } from '../../../src/bot/message.ts';
import { parseMailbox } from '../../../src/connectors/email/addresses.ts';
import { emailFallback } from '../../../src/connectors/email/fallback.ts';
import { messageIdOf } from '../../../src/connectors/email/listener.ts';
import { partnerPayload } from '../../../src/connectors/email/process.ts';
import { renderEmail } from '../../../src/connectors/email/render.ts';
import { refusalOf } from '../../../src/connectors/email/transport.ts';

describe('parseMailbox', () => {
  it('reads evidence+<control>, evidence+T-<n> and partner+<key>, in any case, on any domain', () => {
    expect(parseMailbox('evidence+AC-2@projectx.example.com')).toEqual({ kind: 'evidence', address: 'evidence+ac-2@projectx.example.com', controlIds: ['AC-2'], taskIds: [] });
    expect(parseMailbox('Evidence+ac-2@Other.Example')).toMatchObject({ kind: 'evidence', controlIds: ['AC-2'] });
    expect(parseMailbox('evidence+T-42@x.example')).toMatchObject({ kind: 'evidence', controlIds: [], taskIds: ['42'] });
    expect(parseMailbox('partner+acme@x.example')).toEqual({ kind: 'partner', address: 'partner+acme@x.example', partner: 'acme' });
  });

  it('names no mailbox for anything else', () => {
    for (const address of ['someone@x.example', 'evidence@x.example', 'evidence+@x.example', 'evidence+not a control@x.example', 'partner+Bad Key@x.example', 'partner+acme', 'support+AC-2@x.example', '']) {
      expect(parseMailbox(address), address).toBeUndefined();
    }
  });
});

describe('renderEmail', () => {
  const message: Message = { text: 'T-7 was assigned to you', blocks: [{ type: 'section', text: 'T-7 was assigned to you' }, { type: 'context', text: 'task.assigned · 2026-11-22 09:00 UTC' }] };
  const card: Message = {
    text: 'T-7 <Review> & fix (pending approval)',
    blocks: [
      { type: 'header', text: 'T-7 <Review> & fix' },
      { type: 'section', text: 'Check "who" can see it', fields: [{ label: 'State', value: 'pending approval' }] },
      { type: 'links', links: [{ label: 'Open SEC-7', url: 'https://jira.example.test/browse/SEC-7?a=1&b=2' }, { label: 'Bad', url: 'javascript:alert(1)' }] },
      { type: 'actions', buttons: [{ actionId: 'approve', label: 'Approve', value: '7' }, { actionId: 'deny', label: 'Deny', value: '7' }] },
    ],
  };

  it('writes the message, then the current card with its deep links, as text and escaped HTML', () => {
    const email = renderEmail(message, card);
    expect(email.subject).toBe('[ProjectX] T-7 was assigned to you');
    expect(email.text).toContain('T-7 was assigned to you\n\ntask.assigned · 2026-11-22 09:00 UTC\n\nT-7 <Review> & fix\n==================');
    expect(email.text).toContain('State: pending approval');
    expect(email.text).toContain('Open SEC-7: https://jira.example.test/browse/SEC-7?a=1&b=2');
    expect(email.text).toContain('Decide in Slack or Teams: /projectx approve T-7 [reason] or /projectx deny T-7 <reason>');
    expect(email.html).toContain('<h2 style="font-size: 18px">T-7 &lt;Review&gt; &amp; fix</h2>');
    expect(email.html).toContain('<p>Check &quot;who&quot; can see it</p>');
    expect(email.html).toContain('<a href="https://jira.example.test/browse/SEC-7?a=1&amp;b=2">Open SEC-7</a>');
    expect(email.html).not.toContain('javascript:');
    expect(email.text).not.toContain('javascript:');
  });

  it('shows the Approve/Deny commands of the current card only', () => {
    const request: Message = { text: 'T-7 needs a decision', blocks: [{ type: 'section', text: 'T-7 needs a decision' }, { type: 'actions', buttons: [{ actionId: 'approve', label: 'Approve', value: '7' }] }] };
    const decided: Message = { text: 'T-7 (approved)', blocks: [{ type: 'header', text: 'T-7' }, { type: 'context', text: 'Approved by Ann' }] };
    expect(renderEmail(request, decided).text).not.toContain('Decide in');
    expect(renderEmail(request).text).toContain('Decide in Slack or Teams: /projectx approve T-7 [reason]');
  });

  it('keeps the subject to one line of at most 150 characters', () => {
    const long = renderEmail({ text: `line one\r\nline two ${'x'.repeat(300)}`, blocks: [] });
    expect(long.subject).not.toMatch(/[\r\n]/);
    expect(long.subject.length).toBe('[ProjectX] '.length + 150);
  });
});

describe('emailFallback', () => {
  const message: Message = { text: 'T-7 was assigned', blocks: [{ type: 'section', text: 'T-7 was assigned' }] };
  const withAddress = { EMAIL_FALLBACK_ADDRESS: 'team@example.test' };

  it('sends a DM to the same user by email, saying why it came by email', () => {
    const fallback = emailFallback({ surface: 'slack', target_kind: 'assignee_dm', target: 'user:9', message }, 'no_slack_identity: that user has no linked Slack account', {});
    expect(fallback).toEqual({
      ok: true,
      kind: 'assignee_dm',
      target: 'user:9',
      message: { text: 'T-7 was assigned', blocks: [...message.blocks, { type: 'context', text: 'Sent by email because it could not be delivered to you in Slack (no_slack_identity: that user has no linked Slack account).' }] },
    });
  });

  it('sends a channel post to EMAIL_FALLBACK_ADDRESS, and nowhere (saying so) when it is unset', () => {
    expect(emailFallback({ surface: 'slack', target_kind: 'channel', target: 'compliance-delivery', message }, 'slack_channel_not_found: Slack refused', withAddress)).toMatchObject({ ok: true, kind: 'email', target: 'team@example.test' });
    expect(emailFallback({ surface: 'slack', target_kind: 'channel', target: 'compliance-delivery', message }, 'x', {})).toEqual({ ok: false, reason: 'no email fallback for Slack channel compliance-delivery: EMAIL_FALLBACK_ADDRESS is not set' });
  });

  it('has none for an email notification', () => {
    expect(emailFallback({ surface: 'email', target_kind: 'email', target: 'a@example.test', message }, 'x', withAddress).ok).toBe(false);
  });
});

describe('refusalOf', () => {
  const smtpError = (fields: Record<string, unknown>) => Object.assign(new Error('failed'), fields);
  const refusal = (fields: Record<string, unknown>) => {
    const result = refusalOf(smtpError(fields));
    return result.ok ? undefined : result.refusal;
  };

  it('is permanent only when the relay refused the message for good', () => {
    expect(refusalOf(smtpError({ code: 'EENVELOPE', responseCode: 550, response: '550 5.1.1 no such user', permanent: true }))).toEqual({ ok: false, refusal: { code: 'smtp_550', message: 'the mail relay answered: 550 5.1.1 no such user', permanent: true } });
    expect(refusal({ code: 'EMESSAGE', responseCode: 451, response: '451 try later', permanent: false })).toEqual({ code: 'smtp_451', message: 'the mail relay answered: 451 try later' });
    expect(refusal({ code: 'ECONNECTION', message: 'connect ECONNREFUSED 127.0.0.1:1' })).toEqual({ code: 'smtp_econnection', message: 'connect ECONNREFUSED 127.0.0.1:1' });
  });

  it('retries a refused login: the credentials get fixed, the message was fine', () => {
    expect(refusal({ code: 'EAUTH', responseCode: 535, response: '535 Invalid username or password', permanent: true })).toEqual({ code: 'smtp_535', message: 'the mail relay answered: 535 Invalid username or password' });
  });
});

describe('messageIdOf and partnerPayload', () => {
  it('finds a (folded) Message-ID in the header section only', () => {
    expect(messageIdOf(Buffer.from('From: a@x.test\r\nMessage-ID:\r\n <abc.1@x.test>\r\nSubject: s\r\n\r\nMessage-ID: <body@x.test>\r\n'))).toBe('<abc.1@x.test>');
    expect(messageIdOf(Buffer.from('From: a@x.test\r\n\r\nMessage-ID: <body@x.test>\r\n'))).toBeUndefined();
  });

  it('takes a .json attachment, else the text body, else the outermost {…} of a text with a footer', () => {
    const attachment = { contentType: 'application/octet-stream', filename: 'event.JSON', content: Buffer.from('{"type":"a"}') };
    expect(partnerPayload({ attachments: [attachment] as never, text: 'ignored' })?.toString()).toBe('{"type":"a"}');
    expect(partnerPayload({ attachments: [], text: ' {"type":"b"} ' })?.toString()).toBe('{"type":"b"}');
    expect(partnerPayload({ attachments: [], text: 'Hi,\n{"type":"c","data":{}}\n-- \nThis email was scanned.' })?.toString()).toBe('{"type":"c","data":{}}');
    expect(partnerPayload({ attachments: [], text: 'no json here' })?.toString()).toBe('no json here');
    expect(partnerPayload({ attachments: [], text: '  ' })).toBeUndefined();
  });
});
