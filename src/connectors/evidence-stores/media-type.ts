/**
 * Evidence type by content, not by name: magic bytes (the `file-type` package) for binary formats, and a
 * strict UTF-8 check for text. What is accepted is an explicit list; executables, archives of unknown
 * content and anything unrecognisable are refused with the type that was found.
 */
import { Readable } from 'node:stream';
import { fileTypeFromBuffer } from 'file-type';
import { type Result, ok, refuse } from '../../domain/result.ts';

export const ACCEPTED_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/pdf',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/tiff',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text',
  'application/vnd.oasis.opendocument.spreadsheet',
  'application/zip',
  'message/rfc822',
  'text/plain',
  'text/csv',
  'application/json',
]);

/** Bytes read before deciding (file-type needs up to 4100). */
export const SNIFF_BYTES = 4100;

export async function sniffMediaType(head: Buffer, fileName?: string): Promise<Result<string>> {
  const detected = await fileTypeFromBuffer(head);
  if (detected) {
    return ACCEPTED_MEDIA_TYPES.has(detected.mime) ? ok(detected.mime) : refuse('unsupported_media_type', `files of type ${detected.mime} (.${detected.ext}) are not accepted as evidence`);
  }
  if (head.length === 0) return refuse('empty_file', 'the file is empty');
  if (!looksLikeText(head)) return refuse('unsupported_media_type', 'the file type could not be recognised (not a document, image or text file)');
  const extension = fileName?.toLowerCase().split('.').pop();
  if (extension === 'csv') return ok('text/csv');
  if (extension === 'json') return ok('application/json');
  return ok('text/plain');
}

function looksLikeText(head: Buffer): boolean {
  if (head.includes(0)) return false;
  // A multi-byte character may be cut at the end of the sample: allow up to 3 trailing bytes to be partial.
  for (let trim = 0; trim <= Math.min(3, head.length); trim++) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(0, head.length - trim));
      return true;
    } catch {
      // try a shorter sample
    }
  }
  return false;
}

/** Reads the first `bytes` of a stream and returns them with a stream that still yields everything. */
export async function peek(stream: Readable, bytes: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let length = 0;
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | Uint8Array | string>;
  while (length < bytes) {
    const next = await iterator.next();
    if (next.done) break;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value);
    chunks.push(chunk);
    length += chunk.length;
  }
  const prefix = Buffer.concat(chunks);
  async function* rest() {
    try {
      yield prefix;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value);
      }
    } finally {
      // Whoever stops reading early (a size limit) closes the source too, not just this wrapper.
      await iterator.return?.();
    }
  }
  return { head: prefix.subarray(0, bytes), stream: Readable.from(rest()) };
}
