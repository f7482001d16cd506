/**
 * Slack's Web API wire format: arguments from the query string plus an `application/x-www-form-urlencoded` body
 * (object and array arguments arrive as JSON-encoded strings; WebClient's default) or an `application/json` body.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Json } from './fixtures.ts';

const JSON_ARGS = new Set(['blocks', 'attachments', 'view', 'metadata', 'unfurls', 'user_auth_blocks']);
export const fail = (error: string): Json => ({ ok: false, error });
export const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
export const str = (p: Json, k: string): string | undefined => {
  const v = p[k];
  if (typeof v === 'string') return v === '' ? undefined : v;
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
};
export const rand = (bytes: number): string => randomBytes(bytes).toString('hex');

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Query string + body -> arguments. Returns an error code for bodies Slack would reject. */
export function parseArgs(
  contentType: string,
  raw: string,
  query: URLSearchParams,
): { params: Json; form: boolean } | string {
  const params: Json = Object.fromEntries(query);
  const form = contentType.startsWith('application/x-www-form-urlencoded');
  if (form) Object.assign(params, Object.fromEntries(new URLSearchParams(raw)));
  else if (contentType.startsWith('application/json')) {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return 'invalid_json';
    }
    if (!isObj(body)) return 'invalid_json';
    Object.assign(params, body);
  } else if (raw.length > 0) return 'invalid_form_data';
  for (const key of JSON_ARGS) {
    const v = params[key];
    try {
      if (typeof v === 'string') params[key] = JSON.parse(v);
    } catch {
      /* left as the string: the handler answers with Slack's format error */
    }
  }
  return { params, form };
}

export const bearer = (req: IncomingMessage): string | undefined =>
  /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
