/**
 * One evidence file sent from a chat, fetched and ingested: the part the Slack upload job and the Teams upload
 * job share. The file is downloaded only from an address the caller allows (and a redirect followed only to
 * one), with a time limit; refused by its declared size before a byte is read; streamed through the evidence
 * ingest (type by content, the EVIDENCE_MAX_BYTES limit, the virus scan, SHA-256 while storing, recorded against its control or task); and
 * the outcome returned as the line the uploader reads in the confirmation.
 *
 * Download addresses carry credentials (Teams' `downloadUrl` holds a token in its query string; Slack's needs
 * the bot token): nothing here logs or throws with a URL, only its host.
 */
import { Readable } from 'node:stream';
import { fetch } from 'undici';
import type { EventSink } from '../domain/events.ts';
import type { Actor } from '../domain/actor.ts';
import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import { formatBytes, ingestEvidence } from '../connectors/evidence-stores/ingest.ts';
import type { EvidencePipeline } from '../connectors/evidence-stores/pipeline.ts';

/** Redirects followed (each to an allowed address) before a download is given up. */
const MAX_REDIRECTS = 3;
const DOWNLOAD_TIMEOUT_MS = 60_000;

export interface EvidenceFileDeps {
  db: Db;
  events: EventSink;
  clock: Clock;
  evidence: EvidencePipeline;
  logger: Logger;
}

export interface EvidenceFile {
  /** The file's name as the person sees it (also the name the type check and the record use). */
  name: string;
  url: string;
  /** May the file be downloaded from this address? Asked for the address and for every redirect. */
  allowed: (url: URL) => boolean;
  /** Why an address that is not allowed is refused, for the person (`the download address is not Slack's`). */
  notAllowed: string;
  /** Sent to the file's own origin only (never across a redirect to another origin). */
  headers?: Record<string, string> | undefined;
  /** The size the chat declared for the file, when it did: a larger one is refused without a download. */
  declaredBytes?: number | undefined;
  actor: Actor;
  /** The evidence source recorded (`slack`, `teams`). */
  source: string;
  controlId?: string | undefined;
  taskId?: string | undefined;
}

/**
 * Downloads one file and ingests it; resolves with its confirmation line (`• name: stored, SHA-256 …` or
 * `• name: refused, why`). A refusal the person can act on is a line; a failure that may pass (the host
 * answered 5xx or 429, the network failed, the time ran out) throws a coded error, for the job to retry.
 *
 * @example
 * const line = await ingestEvidenceFile(deps, { name: 'a.pdf', url, allowed: (u) => u.host === 'files.slack.com', notAllowed: "the download address is not Slack's", actor, source: 'slack', controlId: 'AC-2' });
 */
export async function ingestEvidenceFile(deps: EvidenceFileDeps, file: EvidenceFile): Promise<string> {
  const refused = (why: string) => `• ${file.name}: refused, ${why}`;
  if ((file.declaredBytes ?? 0) > deps.evidence.maxBytes) return refused(`larger than the ${formatBytes(deps.evidence.maxBytes)} limit`);
  const first = URL.canParse(file.url) ? new URL(file.url) : undefined;
  if (!first || !file.allowed(first)) {
    deps.logger.warn({ source: file.source, host: first?.host }, 'refused to download an evidence file from a host that is not allowed');
    return refused(file.notAllowed);
  }
  let target: URL = first;
  const origin = first.origin;
  for (let redirects = 0; ; redirects++) {
    const response = await download(target, target.origin === origin ? file.headers : undefined, file);
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      const location = response.headers.get('location');
      const next: URL | undefined = location && URL.canParse(location, target.href) ? new URL(location, target) : undefined;
      if (!next || !file.allowed(next)) {
        deps.logger.warn({ source: file.source, host: target.host, redirectHost: next?.host }, 'refused to follow an evidence download redirect to a host that is not allowed');
        return refused('the download was redirected to an address that is not allowed');
      }
      if (redirects >= MAX_REDIRECTS) return refused(`the download was redirected more than ${MAX_REDIRECTS} times`);
      target = next;
      continue;
    }
    if (response.status !== 200 || !response.body) {
      await response.body?.cancel();
      if (response.status >= 500 || response.status === 429 || response.status === 408) {
        throw Object.assign(new Error(`downloading ${file.name} from ${target.host} answered HTTP ${response.status}`), { code: `${file.source}_download_failed` });
      }
      return refused(`the file could not be downloaded (HTTP ${response.status}); send it again`);
    }
    const length = Number(response.headers.get('content-length') ?? Number.NaN);
    if (Number.isFinite(length) && length > deps.evidence.maxBytes) {
      await response.body.cancel();
      return refused(`larger than the ${formatBytes(deps.evidence.maxBytes)} limit`);
    }
    const result = await ingestEvidence({ db: deps.db, events: deps.events, clock: deps.clock }, deps.evidence, file.actor, {
      content: Readable.fromWeb(response.body),
      fileName: file.name,
      source: file.source,
      controlIds: file.controlId ? [file.controlId] : [],
      taskIds: file.taskId ? [file.taskId] : [],
    });
    if (!result.ok) return refused(result.refusal.message);
    if (result.value.outcome === 'held') return `• ${file.name}: held, ${result.value.message}`;
    return `• ${file.name}: stored, SHA-256 \`${result.value.sha256}\`${result.value.stored ? '' : ' (identical content was already stored)'}${result.value.scanStatus === 'clean' ? ', scanned clean' : ', not scanned for viruses'}`;
  }
}

/**
 * One GET, redirects not followed; a network failure or time-out becomes a coded error naming the host only
 * (its cause is not kept: a client error may quote the address).
 */
async function download(target: URL, headers: Record<string, string> | undefined, file: EvidenceFile) {
  try {
    return await fetch(target, { headers: headers ?? {}, redirect: 'manual', signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
  } catch (error) {
    const reason = (error as { cause?: { code?: unknown } }).cause?.code ?? (error as { name?: unknown }).name;
    throw Object.assign(new Error(`downloading ${file.name} from ${target.host} failed (${typeof reason === 'string' ? reason : 'network error'})`), { code: `${file.source}_download_failed` });
  }
}
