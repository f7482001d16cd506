/**
 * The Attachment API of the fake ServiceNow (docs ServiceNow/ServiceNowDocs @ cb48b5c, c_AttachmentAPI.md):
 * - GET /api/now/attachment: `{"result": [metadata…]}`; sysparm_query over the sys_attachment fields (e.g.
 *   `table_name=incident^table_sys_id=<id>`), ORDERBY, sysparm_limit (default 1000, as documented), sysparm_offset.
 * - GET /api/now/attachment/{sys_id}: `{"result": metadata}`; 404 when unknown.
 * - GET /api/now/attachment/{sys_id}/file: the bytes with the file's Content-Type, and X-Attachment-Metadata.
 * - POST /api/now/attachment/file?table_name=&table_sys_id=&file_name= with the raw bytes: 201 `{"result": metadata}`.
 * - DELETE /api/now/attachment/{sys_id}: 204.
 * Metadata has the keys, order and string values of the docs' example (DOCS_ATTACHMENT_EXAMPLE); files are stored
 * uncompressed, so compressed is 'false' and size_compressed '' ("If the file is not compressed, empty").
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DOCS_ATTACHMENT_EXAMPLE, ERROR_NO_RECORD } from './fixtures.ts';
import { matches, orderComparator, parseQuery } from './query.ts';
import { newSysId, type WriteContext } from './records.ts';
import type { AttachmentFile, RecordedRequest } from './types.ts';
import { send } from './wire.ts';

type Metadata = Record<keyof typeof DOCS_ATTACHMENT_EXAMPLE, string>;
const FIELDS = new Set(Object.keys(DOCS_ATTACHMENT_EXAMPLE));
const get = (m: Record<string, string>, f: string): string => m[f] ?? '';

export function createAttachments() {
  const items = new Map<string, { meta: Metadata; content: Buffer }>();
  return {
    items,
    add(table: string, tableSysId: string, file: AttachmentFile, ctx: WriteContext): Metadata {
      const sysId = newSysId();
      const meta: Metadata = {
        table_sys_id: tableSysId,
        size_bytes: String(file.content.length),
        download_link: '',
        sys_updated_on: ctx.at,
        sys_id: sysId,
        image_height: '',
        sys_created_on: ctx.at,
        file_name: file.fileName,
        sys_created_by: ctx.by,
        compressed: 'false',
        average_image_color: '',
        sys_updated_by: ctx.by,
        sys_tags: '',
        table_name: table,
        image_width: '',
        sys_mod_count: '0',
        content_type: file.contentType,
        size_compressed: '',
      };
      items.set(sysId, { meta, content: file.content });
      return meta;
    },
  };
}
export type Attachments = ReturnType<typeof createAttachments>;

export interface AttachmentRequest {
  req: IncomingMessage;
  res: ServerResponse;
  rec: RecordedRequest;
  body: Buffer;
  origin: string;
  ctx: WriteContext;
  /** ATTACHMENT_PATH's match: [1] the sys_id (or 'file' for uploads), [2] 'file' for downloads. */
  match: RegExpExecArray;
}

export function attachmentApi(store: Attachments, { req, res, rec, body, origin, ctx, match }: AttachmentRequest): void {
  const [, id, file] = match;
  const params = new URL(req.url ?? '/', origin).searchParams;
  const wire = (meta: Metadata): Metadata => ({ ...meta, download_link: `${origin}/api/now/attachment/${meta.sys_id}/file` });

  if (rec.method === 'GET' && id === undefined) {
    const query = parseQuery(params.get('sysparm_query') ?? '', (f) => FIELDS.has(f));
    if (query.ignored.length) rec.ignoredQueryTerms = query.ignored;
    const found = [...store.items.values()].map((a) => a.meta).filter((m) => matches(query, (f) => get(m, f)));
    if (query.orderBy.length) found.sort(orderComparator(query.orderBy, get));
    const offset = Math.max(0, Number.parseInt(params.get('sysparm_offset') ?? '0', 10) || 0);
    const limit = Math.max(1, Number.parseInt(params.get('sysparm_limit') ?? '1000', 10) || 1000);
    return send(res, rec, 200, { result: found.slice(offset, offset + limit).map(wire) });
  }
  if (rec.method === 'POST' && id === 'file' && file === undefined) {
    const [table, tableSysId, fileName] = ['table_name', 'table_sys_id', 'file_name'].map((k) => params.get(k) ?? '');
    if (!table || !tableSysId || !fileName) {
      return send(res, rec, 400, { error: { message: 'Bad Request', detail: 'table_name, table_sys_id and file_name are required' }, status: 'failure' });
    }
    const contentType = req.headers['content-type'] ?? 'application/octet-stream';
    return send(res, rec, 201, { result: wire(store.add(table, tableSysId, { fileName, contentType, content: body }, ctx)) });
  }
  const item = id === undefined ? undefined : store.items.get(id);
  if (!item) return send(res, rec, 404, ERROR_NO_RECORD);
  if (rec.method === 'GET' && file === undefined) return send(res, rec, 200, { result: wire(item.meta) });
  if (rec.method === 'GET') {
    rec.status = 200;
    res.writeHead(200, {
      Server: 'ServiceNow',
      'Content-Type': item.meta.content_type,
      'Content-Length': item.content.length,
      'X-Attachment-Metadata': JSON.stringify(wire(item.meta)),
    });
    return void res.end(item.content);
  }
  if (rec.method === 'DELETE' && file === undefined) {
    store.items.delete(item.meta.sys_id);
    return send(res, rec, 204, undefined);
  }
  return send(res, rec, 405, { error: { message: 'Method not Supported', detail: null }, status: 'failure' });
}
