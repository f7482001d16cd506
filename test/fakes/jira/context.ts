/**
 * What every REST handler of the fake Jira gets: the request (method, path, query, raw body), the caller, the
 * clock, the settings resolved from FakeJiraOptions, and how to render (base URL of self links, API version,
 * zone).
 */
import type { RenderContext } from './render.ts';
import type { JiraStore } from './store.ts';
import type { JiraUser } from './types.ts';

export interface Settings {
  mode: 'cloud' | 'dc';
  timeZone: string;
  maxResultsCap: number;
  perIssueWriteLimits: boolean;
  epochMinute: boolean;
  pageLatencyMs: number;
}

export interface ApiContext {
  method: string;
  /** The API path after /rest/api/{2|3} or /rest/agile/1.0, e.g. '/issue/SEC-1/comment'. */
  rest: string;
  query: URLSearchParams;
  body: Buffer;
  render: RenderContext;
  store: JiraStore;
  caller: JiraUser;
  nowMs: number;
  settings: Settings;
  /** A signed, unauthenticated URL for an attachment's bytes (the "media" host the 303 points at). */
  mediaUrl(attachmentId: string): string;
}
