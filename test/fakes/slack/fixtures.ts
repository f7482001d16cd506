/**
 * Slack Web API payloads the fake is shaped from, and the builders that produce objects in those shapes.
 *
 * The `FIXTURE_*` constants are verbatim copies of /work/shared/fixtures/slack_* (each names its source, as the
 * fixture's `.source.txt` sidecar does). The self-test compares the fake's answers with them key by key, so a
 * builder that drifts from the real shape fails a test. Where no fixture exists (users.info, users.list,
 * oauth.v2.access, chat.update, chat.postEphemeral, views.update/publish, conversations.open) the builder follows
 * Slack's documented response shape and says so.
 */

/**
 * chat.postMessage success. Source: https://docs.slack.dev/reference/methods/chat.postMessage ("Response").
 * Legacy example (custom `username`, `subtype: bot_message`); modern bot-token posts carry `user`, `team` and
 * `app_id` instead (java-slack-sdk json-logs/samples/api/chat.postMessage.json), which is what the fake returns.
 */
export const FIXTURE_POST_MESSAGE = {
  ok: true,
  channel: 'C123ABC456',
  ts: '1503435956.000247',
  message: {
    text: "Here's a message for you",
    username: 'ecto1',
    bot_id: 'B123ABC456',
    attachments: [{ text: 'This is an attachment', id: 1, fallback: "This is an attachment's fallback" }],
    type: 'message',
    subtype: 'bot_message',
    ts: '1503435956.000247',
  },
} as const;

/** Error answer. Source: slackapi/slack-api-specs @ bc08db4 web-api/slack_web_openapi_v2.json /chat.postMessage default. */
export const FIXTURE_ERROR = { error: 'too_many_attachments', ok: false } as const;

/** Source: slackapi/slack-api-specs @ bc08db4 web-api/slack_web_openapi_v2.json /auth.test 200 example. */
export const FIXTURE_AUTH_TEST = {
  ok: true,
  team: 'Subarachnoid Workspace',
  team_id: 'T12345678',
  url: 'https://subarachnoid.slack.com/',
  user: 'grace',
  user_id: 'W12345678',
} as const;

/** Source: slackapi/slack-api-specs @ bc08db4 web-api/slack_web_openapi_v2.json /views.open 200 example. */
export const FIXTURE_VIEWS_OPEN = {
  ok: true,
  view: {
    app_id: 'AA4928AQ',
    blocks: [
      {
        block_id: 'a_block_id',
        element: { action_id: 'an_action_id', type: 'plain_text_input' },
        label: { emoji: true, text: 'A simple label', type: 'plain_text' },
        optional: false,
        type: 'input',
      },
    ],
    bot_id: 'BA13894H',
    callback_id: 'identify_your_modals',
    clear_on_close: false,
    external_id: '',
    hash: '156772938.1827394',
    id: 'VMHU10V25',
    notify_on_close: false,
    private_metadata: 'Shh it is a secret',
    root_view_id: 'VMHU10V25',
    state: { values: {} },
    submit: { text: 'Create', type: 'plain_text' },
    team_id: 'T8N4K1JN',
    title: { text: 'Quite a plain modal', type: 'plain_text' },
    type: 'modal',
  },
} as const;

/** Source: slackapi/slack-api-specs @ bc08db4 web-api/slack_web_openapi_v2.json /views.open default example. */
export const FIXTURE_VIEWS_OPEN_ERROR = {
  error: 'invalid_arguments',
  ok: false,
  response_metadata: { messages: ['invalid `trigger_id`'] },
} as const;

/**
 * The file object. Source: https://docs.slack.dev/reference/objects/file-object (top example). Same object as the
 * files.info 200 example in slack_web_openapi_v2.json, which wraps it as `{ ok, file, comments: [],
 * response_metadata: { next_cursor } }`. url_private / url_private_download need `Authorization: Bearer <token>`.
 */
export const FIXTURE_FILE_OBJECT = {
  id: 'F0A12BCDE',
  created: 1531763342,
  timestamp: 1531763342,
  name: 'tedair.gif',
  title: 'tedair.gif',
  mimetype: 'image/gif',
  filetype: 'gif',
  pretty_type: 'GIF',
  user: 'U012A3BCD',
  editable: false,
  size: 137531,
  mode: 'hosted',
  is_external: false,
  external_type: '',
  is_public: true,
  public_url_shared: false,
  display_as_bot: false,
  username: '',
  url_private: 'https://.../tedair.gif',
  url_private_download: 'https://.../tedair.gif',
  thumb_64: 'https://.../tedair_64.png',
  thumb_80: 'https://.../tedair_80.png',
  thumb_360: 'https://.../tedair_360.png',
  thumb_360_w: 176,
  thumb_360_h: 226,
  thumb_160: 'https://.../tedair_=_160.png',
  thumb_360_gif: 'https://.../tedair_360.gif',
  image_exif_rotation: 1,
  original_w: 176,
  original_h: 226,
  deanimate_gif: 'https://.../tedair_deanimate_gif.png',
  pjpeg: 'https://.../tedair_pjpeg.jpg',
  permalink: 'https://.../tedair.gif',
  permalink_public: 'https://.../...',
  comments_count: 0,
  is_starred: false,
  shares: {
    public: {
      C0A1BC2DE: [
        {
          reply_users: ['U012A3BCD'],
          reply_users_count: 1,
          reply_count: 1,
          ts: '1531763348.000001',
          thread_ts: '1531763273.000015',
          latest_reply: '1531763348.000001',
          channel_name: 'file-under',
          team_id: 'T012AB3C4',
        },
      ],
    },
  },
  channels: ['C0A1BC2DE'],
  groups: [],
  ims: [],
  has_rich_preview: false,
} as const;

/**
 * HTTP 429 as sent by python-slack-sdk's mock server (tests/slack_sdk/web/mock_web_api_handler.py @ ae87985);
 * docs.slack.dev/apis/web-api/rate-limits: "HTTP 429 with a Retry-After header" (seconds).
 */
export const FIXTURE_RATELIMITED = {
  status: 429,
  headers: { 'content-type': 'application/json;charset=utf-8', connection: 'close' },
  body: '{"ok":false,"error":"ratelimited"}',
} as const;

export type Json = Record<string, unknown>;

export interface FakeUser {
  id: string;
  teamId: string;
  realName: string;
  email?: string;
  /** `is_email_confirmed`; default: true when the user has an email. */
  emailConfirmed?: boolean;
  /** Enterprise Grid: the organization, answered as `enterprise_user`. */
  enterpriseId?: string;
  name?: string;
  displayName?: string;
  tz?: string;
  isBot?: boolean;
  deleted?: boolean;
}

export interface FakeFile {
  id: string;
  name: string;
  mimetype: string;
  content: Buffer;
  title?: string;
  filetype?: string;
  prettyType?: string;
  user?: string;
  channels?: string[];
  created?: number;
  teamId?: string;
}

export interface SlackMessage {
  type: 'message';
  text: string;
  user: string;
  bot_id: string;
  app_id: string;
  team: string;
  ts: string;
  blocks?: unknown[];
  attachments?: unknown[];
  thread_ts?: string;
  edited?: { user: string; ts: string };
}

export interface SlackView {
  id: string;
  team_id: string;
  type: string;
  blocks: unknown[];
  private_metadata: string;
  callback_id: string;
  external_id: string;
  state: { values: Json };
  hash: string;
  clear_on_close: boolean;
  notify_on_close: boolean;
  root_view_id: string;
  previous_view_id: string | null;
  app_id: string;
  app_installed_team_id: string;
  bot_id: string;
  title?: unknown;
  submit?: unknown;
  close?: unknown;
}

/** The view object in the shape of FIXTURE_VIEWS_OPEN.view (views.open / update / publish all answer `{ ok, view }`). */
export function viewObject(
  v: Json,
  app: { teamId: string; appId: string; botId: string },
  ids: { id: string; rootId: string; hash: string },
): SlackView {
  const text = (k: string): string => (typeof v[k] === 'string' ? v[k] : '');
  const optional = Object.fromEntries(['title', 'submit', 'close'].filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
  return {
    id: ids.id,
    team_id: app.teamId,
    type: text('type') || 'modal',
    blocks: Array.isArray(v.blocks) ? v.blocks : [],
    private_metadata: text('private_metadata'),
    callback_id: text('callback_id'),
    external_id: text('external_id'),
    state: { values: {} },
    hash: ids.hash,
    clear_on_close: v.clear_on_close === true,
    notify_on_close: v.notify_on_close === true,
    root_view_id: ids.rootId,
    previous_view_id: null,
    app_id: app.appId,
    app_installed_team_id: app.teamId,
    bot_id: app.botId,
    ...optional,
  };
}

/** The file object in the key order of FIXTURE_FILE_OBJECT (thumbnails and image fields only exist for images). */
export function fileObject(file: FakeFile, teamId: string, origin: string): Json {
  const created = file.created ?? 1531763342;
  const ext = file.name.includes('.') ? (file.name.split('.').pop() ?? '') : '';
  const base = `${origin}/files-pri/${teamId}-${file.id}`;
  const user = file.user ?? 'U012A3BCD';
  return {
    id: file.id,
    created,
    timestamp: created,
    name: file.name,
    title: file.title ?? file.name,
    mimetype: file.mimetype,
    filetype: file.filetype ?? (ext.toLowerCase() || 'binary'),
    pretty_type: file.prettyType ?? (ext.toUpperCase() || 'Binary'),
    user,
    editable: false,
    size: file.content.length,
    mode: 'hosted',
    is_external: false,
    external_type: '',
    is_public: (file.channels ?? []).some((c) => c.startsWith('C')),
    public_url_shared: false,
    display_as_bot: false,
    username: '',
    url_private: `${base}/${encodeURIComponent(file.name)}`,
    url_private_download: `${base}/download/${encodeURIComponent(file.name)}`,
    permalink: `${origin}/files/${user}/${file.id}/${encodeURIComponent(file.name)}`,
    permalink_public: `${origin}/${teamId}-${file.id}-0000000000`,
    comments_count: 0,
    is_starred: false,
    shares: {},
    channels: file.channels ?? [],
    groups: [],
    ims: [],
    has_rich_preview: false,
  };
}

/**
 * The user object of users.info (`user`) and users.list (`members[]`). No fixture: built from the documented shape
 * (docs.slack.dev/reference/methods/users.info and users.list examples; @slack/web-api UsersInfoResponse and
 * UsersListResponse). `profile.email` is present only when the user has one (and the token has
 * users:read.email: see the server); `enterprise_user` only for Enterprise Grid members.
 */
export function userObject(u: FakeUser): Json {
  const name = u.name ?? u.realName.toLowerCase().replace(/\s+/g, '.');
  const display = u.displayName ?? '';
  return {
    id: u.id,
    team_id: u.teamId,
    name,
    deleted: u.deleted ?? false,
    color: '9f69e7',
    real_name: u.realName,
    tz: u.tz ?? 'America/Los_Angeles',
    tz_label: 'Pacific Standard Time',
    tz_offset: -28800,
    profile: {
      avatar_hash: 'ge3b51ca72de',
      status_text: '',
      status_emoji: '',
      real_name: u.realName,
      display_name: display,
      real_name_normalized: u.realName,
      display_name_normalized: display,
      ...(u.email !== undefined ? { email: u.email } : {}),
      image_24: 'https://.../image_24.png',
      image_48: 'https://.../image_48.png',
      image_72: 'https://.../image_72.png',
      team: u.teamId,
    },
    is_admin: false,
    is_owner: false,
    is_primary_owner: false,
    is_restricted: false,
    is_ultra_restricted: false,
    is_bot: u.isBot ?? false,
    is_app_user: false,
    updated: 1502138686,
    is_email_confirmed: u.emailConfirmed ?? u.email !== undefined,
    ...(u.enterpriseId !== undefined
      ? { enterprise_user: { id: u.id, enterprise_id: u.enterpriseId, enterprise_name: 'Fake Grid', is_admin: false, is_owner: false, teams: [u.teamId] } }
      : {}),
  };
}

/** Slackbot, listed in every workspace's users.list as a person (`is_bot: false`), with id USLACKBOT. */
export const slackbotUser = (teamId: string): FakeUser => ({ id: 'USLACKBOT', teamId, realName: 'Slackbot', name: 'slackbot' });
