/**
 * Evidence files sent in a Teams personal chat, from the delivery to the confirmation. The message's files (the
 * `application/vnd.microsoft.teams.file.download.info` attachments, notes §6) are kept on its delivery
 * (`inbound_events.result.evidence`); once the control or task is known (named in the message, named before
 * with `evidence AC-2`, or chosen on the card: src/bot/teams/evidence.ts) the upload is staged in the outbox,
 * in the transaction that marks the delivery processed or that records the choice. The outbox relays it to
 * `teams.evidence-submissions`, which enqueues one `teams.evidence-upload` per delivery, its job id the
 * delivery's (a second relay enqueues nothing twice).
 *
 * The upload job downloads each file's `downloadUrl` with a plain GET and no Authorization header (the URL
 * carries its own short-lived token), only from an allowed host: https on a tenant's SharePoint or OneDrive
 * host (`<tenant>.sharepoint.com`, `<tenant>-my.sharepoint.com`, and the sovereign clouds' `sharepoint.us`,
 * `sharepoint-mil.us`, `sharepoint.de`, `sharepoint.cn`), or http(s) on a host listed in `TEAMS_FILE_HOSTS`.
 * Size and type are checked by content, and the file hashed and stored, exactly as for Slack
 * (src/bot/evidence-files.ts); the person gets one line per file in their personal chat, under the key
 * `evidence-confirmation:<delivery id>` (the job's id), so a retried job never confirms twice.
 */
import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../../db/database.ts';
import { findUserById } from '../../domain/users.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import { ingestEvidenceFile } from '../evidence-files.ts';
import { toAdaptiveCard } from './cards.ts';
import type { TeamsJobDeps } from './job-deps.ts';
import { unsealDownloadUrls } from './sealing.ts';
import { settleWithResult } from './inbound.ts';
import { type StagedResult, afterPost, fanOut } from './replies.ts';

export const TEAMS_FILE_CONTENT_TYPE = 'application/vnd.microsoft.teams.file.download.info';
/** Files one message may carry as evidence (as many as Slack's form takes). */
export const MAX_TEAMS_EVIDENCE_FILES = 10;

/** SharePoint Online (and so OneDrive for Business) host suffixes: the public cloud and the sovereign ones. */
const SHAREPOINT_HOST = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.(?:sharepoint\.com|sharepoint\.us|sharepoint-mil\.us|sharepoint\.de|sharepoint\.cn)$/;

/**
 * May an evidence file be downloaded from `url`? https on a tenant's SharePoint or OneDrive host (one label
 * under a SharePoint domain, default port), or a host of `TEAMS_FILE_HOSTS` (`host` or `host:port`, http too).
 *
 * @example isTeamsFileUrl(new URL('https://contoso-my.sharepoint.com/personal/x/_layouts/15/download.aspx?tempauth=…'), undefined) // true
 */
export function isTeamsFileUrl(url: URL, extraHosts: readonly string[] | undefined): boolean {
  if (url.username || url.password) return false;
  if (url.protocol === 'https:' && url.port === '' && SHAREPOINT_HOST.test(url.hostname)) return true;
  return (url.protocol === 'https:' || url.protocol === 'http:') && (extraHosts ?? []).includes(url.host);
}

/** A file as the delivery keeps it: its download address is sealed with the delivery, by `index` (src/bot/teams/sealing.ts). */
export const teamsFileSchema = z.object({
  name: z.string().trim().min(1).max(255),
  /** The attachment's index in the activity. */
  index: z.number().int().min(0),
  fileType: z.string().max(32).optional(),
  uniqueId: z.string().max(200).optional(),
});
export type TeamsFile = z.infer<typeof teamsFileSchema>;

/** What a delivery keeps about its files: who sent them, where to confirm, and (once known) for what. */
export const teamsEvidenceSchema = z.object({
  files: z.array(teamsFileSchema).min(1).max(MAX_TEAMS_EVIDENCE_FILES),
  userId: z.uuid(),
  tenant: z.string().min(1),
  aadObjectId: z.string().min(1),
  conversationId: z.string().min(1),
  controlId: z.string().optional(),
  taskId: z.string().optional(),
  /** The confirmation, once every file was handled (a deferred post sends it without downloading again). */
  confirmation: z.object({ text: z.string(), lines: z.array(z.string()) }).optional(),
});
export type TeamsEvidence = z.infer<typeof teamsEvidenceSchema>;

export type EvidenceResult = StagedResult & { evidence?: TeamsEvidence };

/**
 * Marks a message's delivery processed with its result and its files, in one transaction with the outbox rows:
 * the reply's and, when the target is known, the upload's (and the person's remembered target is used up).
 * False when the delivery was no longer 'received' (nothing written).
 */
export async function settleWithEvidence(db: Db, inboundId: string, result: StagedResult, evidence: TeamsEvidence, now: Date): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    if (!(await settleWithResult(trx, inboundId, { ...result, evidence } satisfies EvidenceResult, now))) return false;
    if (evidence.controlId || evidence.taskId) {
      await trx.insertInto('inbound_job_outbox').values({ job_name: teamsEvidenceSubmissions.name, inbound_ids: [inboundId] }).execute();
      await trx.deleteFrom('teams_evidence_targets').where('tenant_id', '=', evidence.tenant).where('aad_object_id', '=', evidence.aadObjectId).execute();
    }
    return true;
  });
}

/**
 * The choice from the card: the files waiting on delivery `inboundId` are staged for `controlId`, once (a
 * compare-and-set on the delivery's evidence having no target yet), with the outbox row, in one transaction.
 * 'staged', or 'already' when an earlier choice staged them.
 */
export async function stageChosenTarget(db: Db, inboundId: string, controlId: string): Promise<'staged' | 'already'> {
  return db.transaction().execute(async (trx) => {
    const marked = await trx
      .updateTable('inbound_events')
      .set({ result: sql`jsonb_set(result, '{evidence,controlId}', to_jsonb(${controlId}::text))` })
      .where('id', '=', inboundId)
      .where('source', '=', 'teams')
      .where(sql<boolean>`result->'evidence' is not null and result->'evidence'->'controlId' is null and result->'evidence'->'taskId' is null`)
      .executeTakeFirst();
    if (marked.numUpdatedRows === 0n) return 'already';
    await trx.insertInto('inbound_job_outbox').values({ job_name: teamsEvidenceSubmissions.name, inbound_ids: [inboundId] }).execute();
    return 'staged';
  });
}

/** Staged uploads become one `teams.evidence-upload` job each. */
export const teamsEvidenceSubmissions = fanOut('teams.evidence-submissions', () => teamsEvidenceUpload);

export const teamsEvidenceUpload = defineJob({
  name: 'teams.evidence-upload',
  schema: z.object({ inboundId: z.uuid() }),
  policy: { retryDelaySeconds: 10, retryLimit: 5 },
  handler: async ({ inboundId }, { deps, logger }: JobContext<TeamsJobDeps>) => {
    const teams = deps.teams;
    if (!teams) throw Object.assign(new Error('Teams cannot send from this worker (MICROSOFT_APP_PASSWORD is not set)'), { code: 'teams_not_configured' });
    const row = await deps.db.selectFrom('inbound_events').select(['result', 'delivery_id', 'sealed']).where('id', '=', inboundId).where('source', '=', 'teams').executeTakeFirst();
    const parsed = teamsEvidenceSchema.safeParse((row?.result as EvidenceResult | null)?.evidence);
    if (!parsed.success || (!parsed.data.controlId && !parsed.data.taskId)) {
      logger.error({ inboundId }, 'a staged Teams evidence upload holds no files or no target; skipped');
      return { skipped: 'no upload' };
    }
    const evidence = parsed.data;
    let confirmation = evidence.confirmation;
    if (!confirmation) {
      const user = await findUserById(deps.db, evidence.userId);
      if (!user) return { skipped: 'user gone' };
      const actor = { surface: 'teams' as const, user, identity: { surface: 'teams' as const, tenant: evidence.tenant, externalId: evidence.aadObjectId } };
      const urls = unsealDownloadUrls(row?.sealed, row?.delivery_id ?? '', deps.keyring);
      const lines: string[] = [];
      for (const file of evidence.files) {
        const url = urls[String(file.index)];
        if (!url) {
          lines.push(`• ${file.name}: refused, its download address could not be read (the encryption key changed); send it again`);
          continue;
        }
        lines.push(
          await ingestEvidenceFile(
            { ...deps, logger },
            {
              name: file.name,
              url,
              allowed: (url) => isTeamsFileUrl(url, deps.config.TEAMS_FILE_HOSTS),
              notAllowed: "the download address is not your organisation's SharePoint or OneDrive",
              actor,
              source: 'teams',
              controlId: evidence.controlId,
              taskId: evidence.taskId,
            },
          ),
        );
      }
      const target = evidence.controlId ? `control ${evidence.controlId}` : `task T-${evidence.taskId ?? '?'}`;
      confirmation = { text: `Evidence for ${target}:\n${lines.join('\n')}`, lines: [`Evidence for ${target}:`, ...lines] };
      // Kept on the delivery: a post deferred by pacing sends it later without downloading the files again.
      await deps.db
        .updateTable('inbound_events')
        .set({ result: sql`jsonb_set(result, '{evidence,confirmation}', ${JSON.stringify(confirmation)}::jsonb)` })
        .where('id', '=', inboundId)
        .execute();
    }
    const card = toAdaptiveCard({ text: confirmation.text, blocks: confirmation.lines.map((line) => ({ type: 'section' as const, text: line })) });
    const posted = await teams.sender.post({ key: `evidence-confirmation:${inboundId}`, conversationId: evidence.conversationId, text: confirmation.text, card });
    // Deferred: a new job for then, which finds the confirmation and only posts it.
    const outcome = await afterPost(posted, { again: (startAfter: number): Promise<unknown> => deps.jobs.enqueue(teamsEvidenceUpload, { inboundId }, { startAfter }), logger, what: 'evidence confirmation', inboundId });
    return { files: evidence.files.length, ...outcome };
  },
});
