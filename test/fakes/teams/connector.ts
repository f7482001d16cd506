/**
 * A fake Bot Connector: the service an activity's `serviceUrl` names, where the bot sends (../shared/notes/teams.md
 * §2, §4; paths from the Connector API swagger). Plain http on 127.0.0.1, under a region prefix like the real
 * `https://smba.trafficmanager.net/amer/`:
 *
 * - `POST /v3/conversations/{id}/activities` (send), `POST …/activities/{replyToId}` (in-turn replies),
 *   `PUT …/activities/{activityId}` (update): the body must be an activity (an object with a `type`), answered
 *   `{id}`;
 * - `GET /v3/conversations/{id}/members/{memberId}`: the member as Teams gives it (`objectId`, not
 *   `aadObjectId`; `email`, `userPrincipalName`), 404 for an unknown one;
 * - `POST /v3/conversations`: a new conversation, answered `{id, activityId?, serviceUrl}`.
 *
 * Every call must carry `Authorization: Bearer <token>` issued by the fake Entra ID with `aud` = the scope and
 * `appid` = a trusted app id, else 401. Calls are recorded (refused ones too); `failNext` makes the next calls
 * answer 429 (with or without `Retry-After`), 403 `MessageWritesBlocked`, 412, 502 or 504, or carry the call out
 * and drop the connection before answering (a lost response). `posted` lists the messages that really arrived.
 */
import { randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeEntra } from './entra.ts';

export interface ConnectorCall {
  method: string;
  /** Below the service URL's prefix, decoded: `/v3/conversations/a:1/activities/123`. */
  path: string;
  body: unknown;
  status: number;
  /** The token's app id when it was valid. */
  appId?: string;
}

export type ConnectorFault =
  | { status: 429; retryAfterSeconds?: number }
  | { status: 403 }
  | { status: 412 }
  | { status: 502 }
  | { status: 504 }
  /** The call is carried out (a sent message is posted) but the connection drops before any answer. */
  | { lost: true };

export interface TeamsMember {
  id: string;
  name?: string;
  objectId?: string;
  email?: string;
  userPrincipalName?: string;
  givenName?: string;
  surname?: string;
  tenantId?: string;
  userRole?: 'user' | 'guest' | 'anonymous';
}

export interface FakeConnector {
  /** `http://127.0.0.1:<port>/amer/`: what activities carry as `serviceUrl`. */
  readonly serviceUrl: string;
  readonly calls: ConnectorCall[];
  /** Messages posted (sent, not updated), in order: what people in the conversation would see. */
  readonly posted: { conversationId: string; id: string; body: unknown }[];
  /** Accepts tokens issued to this app id. */
  trust(appId: string): void;
  /** Puts a member in a conversation's roster. */
  addMember(conversationId: string, member: TeamsMember): void;
  /** The next `count` calls (after authentication; to `conversationId` only, when given) answer this fault. */
  failNext(count: number, fault: ConnectorFault, conversationId?: string): void;
  close(): Promise<void>;
}

const PREFIX = '/amer';

const FAULT_BODIES: Record<Extract<ConnectorFault, { status: number }>['status'], { code: string; message: string }> = {
  429: { code: 'TooManyRequests', message: 'Too many requests.' },
  403: { code: 'MessageWritesBlocked', message: 'Thread is blocked from message writes.' },
  412: { code: 'PreconditionFailed', message: 'Precondition failed, please try again.' },
  502: { code: 'ServiceError', message: 'Bad gateway.' },
  504: { code: 'GatewayTimeout', message: 'Gateway timeout.' },
};

const isActivity = (body: unknown): boolean => body !== null && typeof body === 'object' && !Array.isArray(body) && typeof (body as { type?: unknown }).type === 'string' && (body as { type: string }).type.length > 0;

export async function startFakeConnector(options: { entra: FakeEntra; scope: string }): Promise<FakeConnector> {
  const trusted = new Set<string>();
  const rosters = new Map<string, Map<string, TeamsMember>>();
  const faults: { fault: ConnectorFault; conversationId: string | undefined }[] = [];
  const calls: ConnectorCall[] = [];
  const posted: FakeConnector['posted'] = [];
  let origin = '';

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const method = req.method ?? '';
      const raw = (req.url ?? '').split('?')[0] ?? '';
      const path = raw.startsWith(`${PREFIX}/`) ? raw.slice(PREFIX.length) : raw;
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = text;
      }
      const call: ConnectorCall = { method, path: path.split('/').map((segment) => decodeURIComponent(segment)).join('/'), body, status: 0 };
      calls.push(call);
      const answer = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        call.status = status;
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
        res.end(payload === undefined ? '' : JSON.stringify(payload));
      };
      const error = (status: number, code: string, message: string, headers?: Record<string, string>) => answer(status, { error: { code, message } }, headers);

      const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
      if (!bearer) return error(401, 'Unauthorized', 'Authorization has been denied for this request.');
      const verified = options.entra.verify(bearer[1]!);
      if (!verified.ok || verified.claims.aud !== options.scope || !trusted.has(verified.claims.appid)) return error(401, 'Unauthorized', 'Authorization has been denied for this request.');
      call.appId = verified.claims.appid;
      if (!raw.startsWith(`${PREFIX}/`)) return error(404, 'NotFound', `no route ${method} ${raw}`);

      const target = call.path.split('/')[3];
      const index = faults.findIndex((entry) => entry.conversationId === undefined || entry.conversationId === target);
      const fault = index >= 0 ? faults.splice(index, 1)[0]!.fault : undefined;
      if (fault && !('lost' in fault)) {
        const { code, message } = FAULT_BODIES[fault.status];
        const headers: Record<string, string> = fault.status === 429 && fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
        return error(fault.status, code, message, headers);
      }

      const segments = call.path.split('/').slice(1);
      const [v3, conversations, conversationId, collection, itemId, ...rest] = segments;
      if (v3 !== 'v3' || conversations !== 'conversations' || rest.length > 0) return error(404, 'NotFound', `no route ${method} ${call.path}`);
      if (conversationId === undefined) {
        if (method !== 'POST') return error(405, 'MethodNotAllowed', `${method} is not allowed here`);
        const parameters = body as { members?: unknown; channelData?: unknown; activity?: unknown } | undefined;
        if (!parameters || typeof parameters !== 'object' || (!Array.isArray(parameters.members) && typeof parameters.channelData !== 'object')) return error(400, 'BadArgument', 'ConversationParameters need members or channelData');
        if (parameters.activity !== undefined && !isActivity(parameters.activity)) return error(400, 'BadArgument', 'the activity needs a type');
        return answer(201, { id: `a:${randomUUID()}`, ...(parameters.activity ? { activityId: randomUUID() } : {}), serviceUrl: `${origin}${PREFIX}/` });
      }
      if (collection === 'activities') {
        // POST sends (or replies to `itemId`); PUT updates `itemId`.
        if (method !== 'POST' && !(method === 'PUT' && itemId !== undefined)) return error(405, 'MethodNotAllowed', `${method} is not allowed here`);
        if (!isActivity(body)) return error(400, 'BadArgument', 'the activity needs a type');
        const id = method === 'PUT' ? itemId! : `1:${randomUUID()}`;
        if (method === 'POST') posted.push({ conversationId, id, body });
        if (fault) {
          call.status = -1;
          req.socket.destroy();
          return;
        }
        return answer(method === 'PUT' ? 200 : 201, { id });
      }
      if (collection === 'members' && itemId !== undefined && method === 'GET') {
        const member = rosters.get(conversationId)?.get(itemId);
        return member ? answer(200, member) : error(404, 'MemberNotFoundInConversation', 'The member was not found in the conversation.');
      }
      return error(404, 'NotFound', `no route ${method} ${call.path}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    serviceUrl: `${origin}${PREFIX}/`,
    calls,
    posted,
    trust(appId) {
      trusted.add(appId);
    },
    addMember(conversationId, member) {
      const roster = rosters.get(conversationId) ?? new Map<string, TeamsMember>();
      roster.set(member.id, member);
      rosters.set(conversationId, roster);
    },
    failNext(count, fault, conversationId) {
      for (let i = 0; i < count; i++) faults.push({ fault, conversationId });
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((error) => (error ? reject(error) : resolve()));
    }),
  };
}
