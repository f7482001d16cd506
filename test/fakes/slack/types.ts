/**
 * The public API of the fake Slack Web API (./server.ts). See ./fixtures.ts for the payload shapes.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FakeFile, FakeUser, Json, SlackMessage, SlackView } from './fixtures.ts';
import type { FakeSocketMode } from './socket.ts';

/** `status: 429` (or just `retryAfter`) -> the fixture's 429; `error` -> `{ ok:false, error }` (HTTP `status`, default
 * 200); other `status` without `error` -> that status with a text body; `dropResponse` -> processed, socket destroyed. */
export interface FailureSpec {
  status?: number;
  retryAfter?: number;
  error?: string;
  dropResponse?: boolean;
  /** `failNext` only: let this many calls through first (the 2nd page of a listing, say). Not recorded in `injected`. */
  skip?: number;
}

export interface RecordedCall {
  /** Web API method, or `response_url` for POSTs to a `fake.responseUrl()`. */
  method: string;
  /** Parsed arguments (token removed); `blocks`, `view`, `attachments`, ... JSON-decoded. */
  params: Json;
  token: string | undefined;
  headers: IncomingHttpHeaders;
  at: Date;
  /** The programmed failure this call consumed, if any. */
  injected?: FailureSpec;
}

/** A valid OAuth code's installation (oauth.v2.access). */
export interface OAuthGrant {
  clientId: string;
  clientSecret: string;
  team: { id: string; name: string };
  enterprise?: { id: string; name: string } | null;
  isEnterpriseInstall?: boolean;
  appId?: string;
  botUserId?: string;
  botId?: string;
  scope?: string;
  authedUser?: { id: string; scope?: string; accessToken?: string };
  /** The bot token the code exchange returns (default: generated `xoxb-…`; `xoxe.xoxb-1-…` with rotation). */
  accessToken?: string;
  redirectUri?: string;
  /** Token rotation: answers carry `refresh_token` + `expires_in` (43200) and `grant_type=refresh_token` works. */
  tokenRotation?: boolean;
}

export interface FakeSlackOptions {
  botToken?: string;
  teamId?: string;
  teamName?: string;
  botUserId?: string;
  botId?: string;
  appId?: string;
  scope?: string;
}

export interface FileDownload {
  fileId: string;
  authorized: boolean;
  at: Date;
}

export interface FakeSlack {
  readonly origin: string;
  /** `{origin}/api/`: pass as WebClient's `slackApiUrl`. */
  readonly apiUrl: string;
  readonly botToken: string;
  readonly teamId: string;
  readonly calls: readonly RecordedCall[];
  readonly downloads: readonly FileDownload[];
  callsTo(method: string): RecordedCall[];
  /** Queue a one-shot failure for `method` (`'*'` = any method; `'response_url'` = response_url POSTs). */
  failNext(method: string, spec: FailureSpec): void;
  /** Fail every call to `method` until cleared with `null` or `reset()`. Queued `failNext`s go first. */
  failAlways(method: string, spec: FailureSpec | null): void;
  /** Clears calls, programmed failures, messages, views, response_url posts and downloads; keeps users, files,
   * tokens and OAuth codes. */
  reset(): void;
  messages(channel: string): SlackMessage[];
  /** Socket Mode: its app-level token, and envelopes to send to the connected client. */
  socketMode(): FakeSocketMode;
  ephemerals(channel: string): { user: string; message: SlackMessage }[];
  view(id: string): SlackView | undefined;
  publishedHome(userId: string): SlackView | undefined;
  /** Adds (or replaces) a user: served by users.info and listed by users.list (after Slackbot and the app's bot). */
  addUser(user: FakeUser): void;
  /** Registers a file; returns its file object (what files.info answers). */
  addFile(file: FakeFile): Json;
  oauth(codes: Record<string, OAuthGrant>): void;
  responseUrl(): string;
  responses(url: string): unknown[];
  close(): Promise<void>;
}

/** What the fake knows about an access token (internal). */
export interface TokenInfo {
  teamId: string;
  teamName: string;
  userId: string;
  userName: string;
  botId: string;
  appId: string;
  scope: string;
  isEnterpriseInstall: boolean;
}
