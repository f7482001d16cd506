/**
 * Socket Mode: when `SLACK_APP_LEVEL_TOKEN` is set, Slack delivers over a WebSocket that we open
 * (`apps.connections.open`), not to our Request URL. The same receiver dispatches each envelope (recording and
 * de-duplicating it, then Bolt and our listeners), and its ack payload goes back over the socket.
 */
import { SocketModeClient } from '@slack/socket-mode';
import { LogLevel } from '@slack/bolt';
import type { Logger } from '../../logger.ts';
import { ephemeral } from './block-kit.ts';
import type { HonoSlackReceiver } from './receiver.ts';

export interface SocketModeTransport {
  /** Between Slack's `connected` and the next disconnect (the client reconnects on its own). */
  readonly connected: boolean;
  stop(): Promise<void>;
}

export async function startSocketMode(input: { appToken: string; apiUrl: string | undefined; receiver: HonoSlackReceiver; logger: Logger }): Promise<SocketModeTransport> {
  const logger = input.logger.child({ component: 'slack-socket-mode' });
  const client = new SocketModeClient({
    appToken: input.appToken,
    logLevel: LogLevel.WARN,
    clientOptions: input.apiUrl ? { slackApiUrl: input.apiUrl } : {},
  });
  client.on('slack_event', (args: { ack: (response?: unknown) => Promise<void>; body: Record<string, unknown>; retry_num?: number; retry_reason?: string }) => {
    void (async () => {
      const body = args.body ?? {};
      const raw = Buffer.from(JSON.stringify(body));
      const outcome = await input.receiver.dispatch(body, raw, {
        ...(typeof args.retry_num === 'number' ? { retryNum: args.retry_num } : {}),
        ...(args.retry_reason ? { retryReason: args.retry_reason } : {}),
      });
      // Over Socket Mode a failure is shown by not acknowledging: Slack then retries the envelope (a failed
      // delivery is taken over by the retry). A refusal is acknowledged: a retry would be refused again.
      if (outcome.kind === 'failed' || outcome.kind === 'not_ready' || outcome.kind === 'unavailable') return;
      const response = outcome.kind === 'answered' ? outcome.response : outcome.kind === 'refused' && outcome.answer === 'ephemeral' ? ephemeral({ text: outcome.message, blocks: [{ type: 'section', text: outcome.message }] }) : undefined;
      await args.ack(response === undefined || response === '' ? undefined : response);
    })().catch((error: unknown) => logger.error({ err: error }, 'a Socket Mode envelope failed'));
  });
  let connected = false;
  client.on('connected', () => (connected = true));
  for (const state of ['disconnected', 'reconnecting', 'disconnecting']) client.on(state, () => (connected = false));
  await client.start();
  connected = true;
  logger.info('connected to Slack over Socket Mode');
  return {
    get connected() {
      return connected;
    },
    async stop() {
      await client.disconnect();
    },
  };
}
