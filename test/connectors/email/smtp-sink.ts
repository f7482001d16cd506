/**
 * A local SMTP relay for tests: smtp-server on 127.0.0.1 (a free port) that keeps every message it accepts
 * (envelope, raw bytes, parsed with mailparser), can require a login, and can be told to refuse the next
 * logins or messages with a reply code, as a real relay would (451 try later, 535 bad login, 550 no).
 */
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface SinkMessage {
  from: string;
  to: string[];
  raw: Buffer;
  mail: ParsedMail;
  /** Who logged in to send it, if anyone. */
  user: string | undefined;
}

export interface SmtpSink {
  port: number;
  messages: SinkMessage[];
  /** Every login attempt, with whether it was accepted. */
  logins: { username: string; accepted: boolean }[];
  /** Refuses the next `times` logins or messages with `code` (then accepts again). */
  refuseNext(stage: 'auth' | 'data', code: number, text: string, times?: number): void;
  close(): Promise<void>;
}

export async function startSmtpSink(options: { username?: string; password?: string } = {}): Promise<SmtpSink> {
  const messages: SinkMessage[] = [];
  const logins: SmtpSink['logins'] = [];
  const refusals: Record<'auth' | 'data', { code: number; text: string }[]> = { auth: [], data: [] };
  const refusal = (stage: 'auth' | 'data') => {
    const next = refusals[stage].shift();
    return next ? Object.assign(new Error(next.text), { responseCode: next.code }) : undefined;
  };
  const server = new SMTPServer({
    // Plain text on loopback; a login when the test wants one (allowed without TLS here, as on a local relay).
    disabledCommands: options.username ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    allowInsecureAuth: true,
    authOptional: !options.username,
    disableReverseLookup: true,
    logger: false,
    closeTimeout: 500,
    onAuth(auth, _session, callback) {
      const refused = refusal('auth');
      const accepted = !refused && auth.username === options.username && auth.password === options.password;
      logins.push({ username: auth.username ?? '', accepted });
      if (refused) return callback(refused);
      if (!accepted) return callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const refused = refusal('data');
        if (refused) return callback(refused);
        const raw = Buffer.concat(chunks);
        simpleParser(raw).then(
          (mail) => {
            messages.push({
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
              raw,
              mail,
              user: typeof session.user === 'string' ? session.user : undefined,
            });
            callback(null, 'OK: kept');
          },
          (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
        );
      });
    },
  });
  server.on('error', () => undefined); // a client going away mid-session is not the test's business
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    logins,
    refuseNext(stage, code, text, times = 1) {
      for (let i = 0; i < times; i++) refusals[stage].push({ code, text });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
