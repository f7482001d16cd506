/**
 * A webhook subscriber on 127.0.0.1 (node:http, a free port): records every request's headers and raw body and
 * answers with the statuses it is told to, in order (then `fallback`). `'hang'` never answers, for timeouts.
 */
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  headers: Record<string, string>;
  body: string;
}

export type Answer = number | 'hang';

export interface WebhookReceiver {
  /** http://127.0.0.1:<port>/hooks/projectx */
  url: string;
  port: number;
  received: ReceivedWebhook[];
  /** Answers for the next requests, in order. */
  answer(...answers: Answer[]): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(options: { fallback?: number } = {}): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const queue: Answer[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : (value ?? '')]));
      received.push({ headers, body: Buffer.concat(chunks).toString('utf8') });
      const answer = queue.shift() ?? options.fallback ?? 204;
      if (answer === 'hang') return;
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer >= 400 ? 'no thanks' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/projectx`,
    port,
    received,
    answer: (...answers) => void queue.push(...answers),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
