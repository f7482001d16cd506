/**
 * ServiceNow payloads the fake is shaped from, and builders producing records in those shapes.
 *
 * The `FIXTURE_*` values are read from test/fixtures/servicenow/, verbatim copies of /work/shared/fixtures/servicenow_*
 * (each file's `.source.txt` sidecar names its origin: ServiceNow/ServiceNowDocs @ cb48b5c, or the third-party
 * gist capture of a Table API answer). The self-test compares the fake's answers with them key by key, so a builder
 * that drifts from the real shape fails. `DOCS_*` constants are copied from the official docs where no fixture file
 * exists, and the error bodies say where each comes from.
 */
import { readFileSync } from 'node:fs';
import type { SnRecord, SnValue } from './types.ts';

const fixtureText = (name: string): string =>
  readFileSync(new URL(`../../fixtures/servicenow/${name}`, import.meta.url), 'utf8');
const fixtureJson = <T>(name: string): T => JSON.parse(fixtureText(name)) as T;

/** Table - GET /now/table/incident/{sys_id} example (INC0000046), docs c_TableAPI.md. */
export const FIXTURE_INCIDENT: SnRecord =
  fixtureJson<{ result: SnRecord }>('servicenow_table_get_incident_by_sys_id_docs.json').result;
/** Table - GET /now/table/problem?sysparm_limit=1 example, docs c_TableAPI.md. */
export const FIXTURE_PROBLEM: SnRecord =
  fixtureJson<{ result: SnRecord[] }>('servicenow_table_get_list_problem_docs.json').result[0] ?? {};
/** /oauth_token.do answer, docs r_OAuthAPIResponseParameters.md. */
export const FIXTURE_TOKEN_RESPONSE = fixtureJson<{
  scope: string; token_type: string; expires_in: number; refresh_token: string; access_token: string;
}>('servicenow_oauth_token_response_docs.json');
/** The 429 body, docs inbound-REST-API-rate-limiting.md; the fake sends this text byte for byte. */
export const FIXTURE_RATE_LIMIT_BODY = fixtureText('servicenow_rate_limit_429_body_docs.json');
/** A captured Table API answer (third-party gist, 2015): the Link / X-Total-Count header shapes. */
export const FIXTURE_GIST_CAPTURE = fixtureText('servicenow_table_get_response_headers_gist_capture.txt');

/** Attachment - GET /now/attachment example record (docs c_AttachmentAPI.md @ cb48b5c; no fixture file). */
export const DOCS_ATTACHMENT_EXAMPLE = {
  table_sys_id: '5054b6f8c0a800060056addcf551ecf8',
  size_bytes: '462',
  download_link: 'https://instance.service-now.com/api/now/attachment/615ea769c0a80166001cf5f2367302f5/file',
  sys_updated_on: '2009-05-21 04:12:21',
  sys_id: '615ea769c0a80166001cf5f2367302f5',
  image_height: '',
  sys_created_on: '2009-05-21 04:12:21',
  file_name: 'blocks.swf',
  sys_created_by: 'glide.maint',
  compressed: 'true',
  average_image_color: '',
  sys_updated_by: 'glide.maint',
  sys_tags: '',
  table_name: 'content_block_programmatic',
  image_width: '',
  sys_mod_count: '0',
  content_type: 'application/x-shockwave-flash',
  size_compressed: '485',
} as const;

/** A field's plain value: the string, or a reference's sys_id. */
export const fieldValue = (v: SnValue | undefined): string => (typeof v === 'string' ? v : (v?.value ?? ''));

type ErrorBody = { error: { message: string; detail: string | null }; status: 'failure' };
const errorBody = (message: string, detail: string | null): ErrorBody => ({ error: { message, detail }, status: 'failure' });
/** 401 on /api/now: verbatim from the docs (platform-security/authentication/add-OIDC-entity.md). */
export const ERROR_NOT_AUTHENTICATED = errorBody('User Not Authenticated', 'Required to provide Auth information');
/** 403: "User Not Authorized" / "Failed API level ACL Validation" as in the docs (rest-apis/devops-config-api.md). */
export const ERROR_NOT_AUTHORIZED = errorBody('User Not Authorized', 'Failed API level ACL Validation');
/** 404 for an unknown sys_id. Not in the docs; the strings real clients assert on (e.g. a Java TableApiClient test,
 * demisto's ServiceNow integration tests). */
export const ERROR_NO_RECORD = errorBody('No Record found', "Record doesn't exist or ACL restricts the record retrieval");
/** 400 for an unknown table. Not in the docs; as captured from real instances in third-party code and notes. */
export const errorInvalidTable = (table: string): ErrorBody => errorBody(`Invalid table ${table}`, null);
/** 400 for a path no API serves. Not in the docs; the message third-party clients match on. */
export const ERROR_BAD_URI = errorBody('Requested URI does not represent any resource', null);
/** 400 for a write whose body is not a JSON object. The docs only say "400 Bad Request"; the wording is ours. */
export const ERROR_BAD_JSON = errorBody('Exception while reading request', 'The payload is not valid JSON.');
/** A 5xx error body in the docs' general error shape (c_CustomWebServices.md "Error response format"). */
export const errorServer = (message: string): ErrorBody => errorBody(message, 'Injected by the fake ServiceNow');
/** /oauth_token.do refusal (HTTP 401). The docs give no error example; this is the answer reported from real
 * instances for a bad client or credentials (community threads on "access_denied" / "server_error"). */
export const OAUTH_ERROR = { error_description: 'access_denied', error: 'server_error' } as const;

/**
 * Reference fields and the table they point at. From the fixtures' `{link, value}` fields (location, sys_domain,
 * assignment_group, caller_id, opened_by, problem_id, cmdb_ci; sys_domain's link really points at sys_user_group),
 * plus fields that are references in ServiceNow's task/incident/change schema but empty ("") in the fixtures.
 */
export const REFERENCE_FIELDS: ReadonlyMap<string, string> = new Map([
  ['location', 'cmn_location'], ['sys_domain', 'sys_user_group'], ['assignment_group', 'sys_user_group'],
  ['caller_id', 'sys_user'], ['opened_by', 'sys_user'], ['problem_id', 'problem'], ['cmdb_ci', 'cmdb_ci'],
  ['assigned_to', 'sys_user'], ['closed_by', 'sys_user'], ['resolved_by', 'sys_user'], ['requested_by', 'sys_user'],
  ['company', 'core_company'], ['business_service', 'cmdb_ci_service'], ['parent', 'task'],
  ['parent_incident', 'incident'], ['rfc', 'change_request'], ['caused_by', 'change_request'], ['chg_model', 'chg_model'],
]);

/** Fields `insert` assigns (so the builders leave them out). */
export const ASSIGNED_FIELDS = [
  'sys_id', 'number', 'sys_created_on', 'sys_created_by', 'sys_updated_on', 'sys_updated_by', 'sys_mod_count',
] as const;
const FIXTURE_BASE = 'https://instance.servicenow.com';

function build(template: SnRecord, overrides: Record<string, unknown>, baseUrl: string): SnRecord {
  const out: SnRecord = {};
  const assigned: readonly string[] = ASSIGNED_FIELDS;
  for (const [key, value] of Object.entries(template)) {
    if (assigned.includes(key)) continue;
    out[key] = typeof value === 'string' ? value : { link: value.link.replace(FIXTURE_BASE, baseUrl), value: value.value };
  }
  for (const [key, value] of Object.entries(overrides)) out[key] = toSnValue(key, value, baseUrl);
  return out;
}
function toSnValue(field: string, value: unknown, baseUrl: string): SnValue {
  if (typeof value === 'object' && value !== null && 'value' in value && typeof value.value === 'string') {
    const link = 'link' in value && typeof value.link === 'string' ? value.link : undefined;
    return link !== undefined ? { link, value: value.value } : toSnValue(field, value.value, baseUrl);
  }
  const text = typeof value === 'string' ? value
    : typeof value === 'number' || typeof value === 'boolean' ? String(value)
    : value === null || value === undefined ? '' : JSON.stringify(value);
  const table = REFERENCE_FIELDS.get(field);
  return table !== undefined && text !== '' ? { link: `${baseUrl}/api/now/table/${table}/${text}`, value: text } : text;
}

/**
 * A full incident, shaped like FIXTURE_INCIDENT: every fixture field but those `insert` assigns, with the fixture's
 * values; references as `{ link, value }` with links on `baseUrl` (pass `fake.url`). Overrides may give a reference
 * as a plain sys_id. A record inserted from it has exactly the fixture's keys.
 */
export function incidentFields(overrides: Record<string, unknown> = {}, baseUrl = FIXTURE_BASE): SnRecord {
  return build(FIXTURE_INCIDENT, overrides, baseUrl);
}

/**
 * A change_request. No change_request fixture exists: the task columns are the fields the incident and problem
 * fixtures share (the problem fixture's keys are a subset of the incident's), with neutral values, plus the
 * change-specific columns of ServiceNow's change_request table (from its schema, not from a fixture).
 */
export function changeRequestFields(overrides: Record<string, unknown> = {}, baseUrl = FIXTURE_BASE): SnRecord {
  const task: SnRecord = {};
  for (const key of Object.keys(FIXTURE_PROBLEM)) {
    const value = FIXTURE_INCIDENT[key];
    if (value !== undefined) task[key] = value;
  }
  const template: SnRecord = {
    ...task,
    short_description: 'Upgrade the SFA application servers',
    sys_class_name: 'change_request',
    state: '-5',
    type: 'normal',
    category: 'Software',
    risk: '3',
    start_date: '',
    end_date: '',
    implementation_plan: '',
    backout_plan: '',
    test_plan: '',
    justification: '',
    requested_by: '',
    phase: 'requested',
    phase_state: 'open',
    cab_required: 'false',
    conflict_status: 'Not Run',
    on_hold: 'false',
    review_status: '',
    close_code: '',
    chg_model: '',
  };
  return build(template, overrides, baseUrl);
}
