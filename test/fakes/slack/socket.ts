/**
 * Socket Mode for the fake Slack: `apps.connections.open` (app-level token) answers a ws:// URL on the fake's
 * own server; a connected client gets `hello`, then whatever the test sends as envelopes, and its acks
 * (`{ envelope_id, payload }`) resolve the test's promises. Shapes from Slack's Socket Mode docs: envelopes
 * `{ envelope_id, type: events_api | slash_commands | interactive, payload, accepts_response_payload,
 * retry_attempt, retry_reason }`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';

export interface FakeSocketMode {
  appToken: string;
  /** The answer of apps.connections.open. */
  open(origin: string): { ok: true; url: string };
  /** Resolves when a client is connected and has been greeted. */
  connected(): Promise<void>;
  /** Sends an envelope and resolves with the client's ack payload. */
  send(type: 'events_api' | 'slash_commands' | 'interactive', payload: unknown, extra?: { retryAttempt?: number; retryReason?: string }): Promise<unknown>;
  close(): void;
}

export function attachSocketMode(server: Server, appToken = 'xapp-1-A00000001-0000000001-fakeappleveltoken'): FakeSocketMode {
  const wss = new WebSocketServer({ noServer: true });
  const acks = new Map<string, (payload: unknown) => void>();
  let client: WebSocket | undefined;
  let greeted: () => void = () => {};
  let ready = new Promise<void>((resolve) => (greeted = resolve));

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!req.url?.startsWith('/socket-mode/')) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      client = ws;
      ws.on('message', (data) => {
        const message = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8')) as { envelope_id?: string; payload?: unknown };
        if (message.envelope_id) acks.get(message.envelope_id)?.(message.payload ?? {});
      });
      ws.on('close', () => {
        if (client === ws) {
          client = undefined;
          ready = new Promise<void>((resolve) => (greeted = resolve));
        }
      });
      ws.send(JSON.stringify({ type: 'hello', num_connections: 1, debug_info: { host: 'fake', approximate_connection_time: 18060 }, connection_info: { app_id: 'A00000001' } }));
      greeted();
    });
  });

  return {
    appToken,
    open: (origin) => ({ ok: true, url: `${origin.replace(/^http/, 'ws')}/socket-mode/${randomUUID()}` }),
    connected: () => ready,
    send(type, payload, extra = {}) {
      if (!client) return Promise.reject(new Error('no Socket Mode client is connected'));
      const envelope_id = randomUUID();
      const acked = new Promise<unknown>((resolve) => acks.set(envelope_id, resolve));
      client.send(JSON.stringify({ envelope_id, type, payload, accepts_response_payload: type !== 'events_api', ...(extra.retryAttempt !== undefined ? { retry_attempt: extra.retryAttempt, retry_reason: extra.retryReason ?? 'timeout' } : {}) }));
      return acked;
    },
    close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}
