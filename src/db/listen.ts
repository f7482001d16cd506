/**
 * A PostgreSQL LISTEN connection that stays up: one dedicated client (a pooled one would be handed to other
 * queries), reconnected with backoff when the server or the network drops it. Whoever caches data the database
 * owns listens here, and must treat "not listening" as "cannot trust the cache": `onState(false)` is called
 * the moment the connection is lost, `onState(true)` once LISTEN is in place again (notifications sent in
 * between are lost, so a cache clears itself on both).
 */
import pg from 'pg';
import type { Logger } from '../logger.ts';

export interface ListenOptions {
  connectionString: string;
  channel: string;
  onNotify: (payload: string) => void;
  onState: (listening: boolean) => void;
  logger: Logger;
  applicationName?: string;
  /** Reconnect backoff bounds (doubling from min to max). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * How often the connection is asked `select 1`, and how long it may take to answer. A connection that stops
   * answering (a half-open TCP connection after a network fault: no error, no end, and no notifications
   * either) is treated as lost within about interval + timeout, instead of when TCP keepalive gives up
   * minutes later. Defaults 15 s and 5 s.
   */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
}

export interface Listener {
  readonly listening: boolean;
  close(): Promise<void>;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

/** Starts listening; resolves once the first attempt has connected or failed (it keeps retrying either way). */
export async function listen(options: ListenOptions): Promise<Listener> {
  if (!CHANNEL.test(options.channel)) throw new Error(`invalid LISTEN channel name ${JSON.stringify(options.channel)}`);
  const minBackoff = options.minBackoffMs ?? 500;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  let client: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let backoff = minBackoff;
  let timer: NodeJS.Timeout | undefined;
  const pingInterval = options.pingIntervalMs ?? 15_000;
  const pingTimeout = options.pingTimeoutMs ?? 5_000;
  let pinging = false;
  const pinger = setInterval(() => {
    const current = client;
    if (!current || !listening || pinging) return;
    pinging = true;
    let deadline: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => reject(new Error(`the LISTEN connection did not answer a ping within ${pingTimeout} ms`)), pingTimeout);
    });
    Promise.race([current.query('select 1'), timedOut])
      .catch((error: unknown) => lost(current, error instanceof Error ? error : new Error(String(error))))
      .finally(() => {
        clearTimeout(deadline);
        pinging = false;
      });
  }, pingInterval);
  pinger.unref();

  const setListening = (next: boolean) => {
    if (listening === next) return;
    listening = next;
    options.onState(next);
  };

  const lost = (current: pg.Client, error?: Error) => {
    if (client !== current) return; // an older client's late event
    client = undefined;
    setListening(false);
    current.removeAllListeners();
    current.on('error', () => undefined);
    void current.end().catch(() => undefined);
    if (closed) return;
    options.logger.warn({ err: error, channel: options.channel, retryInMs: backoff }, 'database LISTEN connection lost; reconnecting');
    timer = setTimeout(() => void connect(), backoff);
    timer.unref();
    backoff = Math.min(backoff * 2, maxBackoff);
  };

  const connect = async (): Promise<void> => {
    if (closed) return;
    const current = new pg.Client({
      connectionString: options.connectionString,
      application_name: options.applicationName ?? `projectx-listen-${options.channel}`,
      // A half-open TCP connection would otherwise look like a quiet channel forever.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 5_000,
    });
    client = current;
    current.on('error', (error) => lost(current, error));
    current.on('end', () => lost(current));
    current.on('notification', (message) => {
      if (message.channel === options.channel) options.onNotify(message.payload ?? '');
    });
    try {
      await current.connect();
      await current.query(`listen ${options.channel}`);
      if (client !== current || closed) return;
      backoff = minBackoff;
      setListening(true);
    } catch (error) {
      lost(current, error instanceof Error ? error : new Error(String(error)));
    }
  };

  await connect();
  return {
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(pinger);
      const current = client;
      client = undefined;
      setListening(false);
      if (current) {
        current.removeAllListeners();
        current.on('error', () => undefined);
        await current.end().catch(() => undefined);
      }
    },
  };
}
