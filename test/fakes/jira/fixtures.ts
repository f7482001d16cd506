/**
 * Jira payloads the fake is shaped from, the site's fixed configuration (workflow, priorities, issue types), and
 * every error body it answers, each with its source.
 *
 * `FIXTURE_*` are read from test/fixtures/jira/, verbatim copies of /work/shared/fixtures/jira_* (each `.source.txt`
 * sidecar names its origin: Atlassian's published OpenAPI examples, the webhooks docs example). The self-test
 * compares the fake's answers with them key by key.
 *
 * Sources of the error texts ("measured" = a third party's recorded answer of a real site):
 * - 401 on Cloud: `Client must be authenticated to access this resource.` as the whole body for a GET (measured on
 *   Jira Cloud 2026-09-30 by brekkylab/backlot `backlot/errors/atlassian.py`; the same text begins the 401 body in
 *   atlassian/gajira-login#59), and `{"errorMessages":["You are not authenticated. Authentication required to
 *   perform this operation."],"errors":{}}` for a write (tenable/integration-jira-cloud#165, a Cloud POST, 2022;
 *   also Jira Server/DC's wording, rjvandoesburg/laravel-jira-rest-client#34).
 * - A Bearer the site cannot read as a Connect token: 403 `{"error":"Failed to parse Connect Session Auth Token"}`
 *   (backlot, measured 2026-09-04).
 * - Unbounded JQL: raycast/extensions#21425 (a real answer, 2025-09), verbatim.
 * - CHANGE-2046 410: the notes (A1, "seen 2026-02"), verbatim: it has no `errors` key.
 * - Unparseable JSON body: backlot, measured 2026-09-15 (`errorMessages` alone).
 * - Issue not found: the sentence every client and capture quotes (e.g. mozilla, n8n fakes); guessed `errors: {}`.
 * - Gateway 401: the shape of raycast/extensions#11212 `{"code":401,"message":"Unauthorized; scope does not match"}`.
 * - OAuth (auth.atlassian.com runs on Auth0): `Unknown or invalid refresh token.` (the notes, A5) and Auth0's
 *   `invalid_grant` / `access_denied` wordings (GUESSED from Auth0's behaviour; Atlassian publishes none).
 * Others are marked GUESS where they are defined.
 */
import { readFileSync } from 'node:fs';
import type { IssueTypeName, PriorityName, StatusCategoryKey } from './types.ts';

const fixtureText = (name: string): string => readFileSync(new URL(`../../fixtures/jira/${name}`, import.meta.url), 'utf8');
const fixtureJson = <T>(name: string): T => JSON.parse(fixtureText(name)) as T;

type Json = Record<string, unknown>;
/** GET /rest/api/3/search/jql example (OpenAPI 1001.0.0-SNAPSHOT-57a0ca5b): `{isLast, issues:[…]}`. */
export const FIXTURE_SEARCH_JQL = fixtureJson<{ isLast: boolean; issues: Json[] }>('jira_search_jql_v3_response_openapi.json');
/** The legacy offset search example (same OpenAPI, 2022): the DC /rest/api/2/search envelope. */
export const FIXTURE_SEARCH_LEGACY = fixtureJson<{ expand: string; startAt: number; maxResults: number; total: number; issues: Json[] }>(
  'jira_search_v3_legacy_startAt_response_openapi.json',
);
/** SearchAndReconcileResults schema and the search/jql parameters. */
export const FIXTURE_SEARCH_SCHEMA = fixtureJson<{ SearchAndReconcileResults: { properties: Json } }>('jira_search_jql_v3_schema_openapi.json');
/** The jira:issue_updated example of the webhooks docs (with its `accoundId` typo and `"active":"true"`). */
export const FIXTURE_WEBHOOK_UPDATED = fixtureJson<Json>('jira_webhook_issue_updated_docs.json');

export interface StatusDef {
  name: string;
  id: string;
  category: StatusCategoryKey;
  /** The id of the transition that leads to this status (stable per target). */
  transitionId: string;
}
/** The workflow of the brief: any status moves to any other by the transition named after the target. */
export const STATUSES: readonly StatusDef[] = [
  { name: 'To Do', id: '10000', category: 'new', transitionId: '11' },
  { name: 'In Progress', id: '3', category: 'indeterminate', transitionId: '21' },
  { name: 'In Review', id: '10001', category: 'indeterminate', transitionId: '31' },
  { name: 'Done', id: '10002', category: 'done', transitionId: '41' },
  { name: "Won't Do", id: '10003', category: 'done', transitionId: '51' },
];
/** Jira's three status categories, ids and colours as every Cloud site has them. */
export const STATUS_CATEGORIES: Readonly<Record<StatusCategoryKey, { id: number; key: StatusCategoryKey; colorName: string; name: string }>> = {
  new: { id: 2, key: 'new', colorName: 'blue-gray', name: 'To Do' },
  indeterminate: { id: 4, key: 'indeterminate', colorName: 'yellow', name: 'In Progress' },
  done: { id: 3, key: 'done', colorName: 'green', name: 'Done' },
};
/** Jira's default priority scheme (ids 1-5, icons under /images/icons/priorities/). */
export const PRIORITIES: readonly { name: PriorityName; id: string; icon: string }[] = [
  { name: 'Highest', id: '1', icon: 'highest.svg' },
  { name: 'High', id: '2', icon: 'high.svg' },
  { name: 'Medium', id: '3', icon: 'medium.svg' },
  { name: 'Low', id: '4', icon: 'low.svg' },
  { name: 'Lowest', id: '5', icon: 'lowest.svg' },
];
/** A team-managed-style type scheme; ids and avatar ids are this fake's choice (they vary per site). */
export const ISSUE_TYPES: readonly { name: IssueTypeName; id: string; description: string; subtask: boolean; hierarchyLevel: number; avatarId: number }[] = [
  { name: 'Epic', id: '10000', description: 'A big user story that needs to be broken down.', subtask: false, hierarchyLevel: 1, avatarId: 10307 },
  { name: 'Task', id: '10001', description: 'A small, distinct piece of work.', subtask: false, hierarchyLevel: 0, avatarId: 10318 },
  { name: 'Bug', id: '10002', description: 'A problem or error.', subtask: false, hierarchyLevel: 0, avatarId: 10303 },
  { name: 'Story', id: '10003', description: 'Functionality or a feature expressed as a user goal.', subtask: false, hierarchyLevel: 0, avatarId: 10315 },
  { name: 'Sub-task', id: '10004', description: "A small piece of work that's part of a larger task.", subtask: true, hierarchyLevel: -1, avatarId: 10316 },
];
/** The board estimation field of the brief (the common Cloud "Story point estimate" field, notes A7). */
export const STORY_POINTS_FIELD = { fieldId: 'customfield_10016', displayName: 'Story point estimate' } as const;

export type ErrorBody = { errorMessages: string[]; errors: Record<string, string> };
export const errorBody = (messages: string[], errors: Record<string, string> = {}): ErrorBody => ({ errorMessages: messages, errors });

export const JIRA_UNAUTHENTICATED_LINE = 'Client must be authenticated to access this resource.';
export const ERROR_NOT_AUTHENTICATED = errorBody(['You are not authenticated. Authentication required to perform this operation.']);
export const CONNECT_TOKEN_UNREADABLE = { error: 'Failed to parse Connect Session Auth Token' };
export const ERROR_ISSUE_NOT_FOUND = errorBody(['Issue does not exist or you do not have permission to see it.']);
export const ERROR_UNBOUNDED_JQL = errorBody(['Unbounded JQL queries are not allowed here. Please add a search restriction to your query.']);
export const CHANGE_2046_BODY = {
  errorMessages: [
    'The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046',
  ],
};
export const BODY_UNPARSEABLE = { errorMessages: ['There was an error parsing JSON. Check that your request body is valid.'] };
/** GUESS (the wording is localised on real sites; backlot measured only the 400 itself). */
export const ERROR_BAD_PAGE_TOKEN = errorBody(['The provided nextPageToken is invalid or has expired.']);
/** GUESS: a token minted for another JQL (real Jira refuses it; its wording is not published). */
export const ERROR_TOKEN_OTHER_JQL = errorBody(['The nextPageToken does not match the JQL query of this request.']);
/** backlot measured the range (1-5000, both methods); the sentence is a GUESS. */
export const ERROR_MAX_RESULTS = errorBody(['The maxResults parameter must be between 1 and 5,000.']);
/** Jira's familiar wording (jira-python users quote it); not from a published example. */
export const errorTransition = (id: string): ErrorBody => errorBody([`Transition id '${id}' is not valid for this issue.`]);
/** GUESS. */
export const errorPropertyNotFound = (key: string): ErrorBody => errorBody([`The property with key '${key}' does not exist.`]);
/** GUESS. */
export const ERROR_RATE_LIMITED = errorBody(['Rate limit exceeded.']);
export const errorServer = (status: number): ErrorBody => errorBody([status === 503 ? 'Service Unavailable' : 'Internal server error']);
/** GUESS (403 on Jira: "You do not have permission to …" is the family of messages). */
export const ERROR_FORBIDDEN = errorBody(['You do not have permission to perform this operation.']);
/** GUESS (409: the OpenAPI lists "conflicting update"). */
export const ERROR_CONFLICT = errorBody(['A conflicting update is in progress. Try again later.']);

export const GATEWAY_UNAUTHORIZED = { code: 401, message: 'Unauthorized' };
export const GATEWAY_SCOPE_MISMATCH = { code: 401, message: 'Unauthorized; scope does not match' };
/** GUESS from memory of field reports: an unknown cloud id under /ex/jira. */
export const GATEWAY_UNKNOWN_SITE = { errorMessage: 'Site temporarily unavailable' };

export const OAUTH_BAD_CLIENT = { error: 'access_denied', error_description: 'Unauthorized' };
export const OAUTH_BAD_REFRESH = { error: 'invalid_grant', error_description: 'Unknown or invalid refresh token.' };
export const OAUTH_BAD_CODE = { error: 'invalid_grant', error_description: 'Invalid authorization code' };
export const OAUTH_BAD_REDIRECT = { error: 'invalid_grant', error_description: 'The redirect_uri parameter does not match the one used in the authorization request.' };
