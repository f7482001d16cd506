/**
 * Evidence uploaded in the Slack modal: for each file, `files.info` with the bot token, then its
 * `url_private_download` (refused unless the host is Slack's, or `SLACK_API_URL`'s in tests), streamed through
 * the evidence ingest (type by content, 10 MB limit, SHA-256 while storing) and recorded against the control or
 * task by the download shared with Teams (src/bot/evidence-files.ts); the uploader gets a DM with each file's
 * hash, or why it was refused.
 */
import { z } from 'zod';
import { ingestEvidenceFile } from '../evidence-files.ts';
import { findUserById } from '../../domain/users.ts';
import type { Db } from '../../db/database.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { SlackJobDeps } from './job-deps.ts';
import { escapeMrkdwn, toBlocks } from './block-kit.ts';

export const SLACK_FILE_HOSTS = ['files.slack.com'];

/** May a file be downloaded from `url` with the bot token? Only from Slack (or the configured API host). */
export function isSlackFileUrl(url: string, apiUrl: string | undefined): boolean {
  if (!URL.canParse(url)) return false;
  const target = new URL(url);
  const allowed = new Set(SLACK_FILE_HOSTS);
  if (apiUrl && URL.canParse(apiUrl)) allowed.add(new URL(apiUrl).host);
  const secure = target.protocol === 'https:' || (apiUrl !== undefined && URL.canParse(apiUrl) && target.protocol === new URL(apiUrl).protocol);
  return secure && allowed.has(target.host);
}

const uploadSchema = z.object({
  fileIds: z.array(z.string().regex(/^F[A-Z0-9]+$/)).min(1).max(10),
  userId: z.uuid(),
  slackUserId: z.string(),
  /** The uploader's workspace (enterprise or team id): its installation's token fetches the files. */
  tenant: z.string().optional(),
  controlId: z.string().optional(),
  taskId: z.string().optional(),
});
export type EvidenceUploadRequest = z.infer<typeof uploadSchema>;

/**
 * An accepted evidence form, staged in one transaction with its delivery: the delivery is marked processed
 * with the upload request as its result, and the inbound outbox gets a row naming it. The modal closes only
 * after this commits, so an upload the person saw accepted cannot be lost with the process; a process that
 * stops before it leaves the delivery 'received' for the redelivery sweep, which runs the form's listener again.
 */
export async function stageEvidenceUpload(db: Db, inboundId: string, upload: EvidenceUploadRequest, now: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const marked = await trx
      .updateTable('inbound_events')
      .set({ status: 'processed', processed_at: now, result: JSON.stringify({ upload }) })
      .where('id', '=', inboundId)
      .where('status', '=', 'received')
      .executeTakeFirst();
    if (marked.numUpdatedRows === 0n) {
      // Already staged (a redelivery of a form whose first run committed): nothing more to do. Anything else
      // (failed, taken over) must not be acknowledged as accepted.
      const row = await trx.selectFrom('inbound_events').select('status').where('id', '=', inboundId).executeTakeFirst();
      if (row?.status === 'processed') return;
      throw new Error(`the evidence form's delivery is ${row?.status ?? 'gone'}; nothing was staged`);
    }
    await trx.insertInto('inbound_job_outbox').values({ job_name: slackEvidenceSubmissions.name, inbound_ids: [inboundId] }).execute();
  });
}

/**
 * Staged evidence forms (relayed by the inbound outbox, up to 100 at once) become one upload job each, whose id
 * is the delivery's: a retry of this job, or a second relay, enqueues nothing twice.
 */
export const slackEvidenceSubmissions = defineJob({
  name: 'slack.evidence-submissions',
  schema: z.object({ inboundIds: z.array(z.uuid()).min(1).max(500) }),
  handler: async ({ inboundIds }, { deps, logger }: JobContext<SlackJobDeps>) => {
    const rows = await deps.db.selectFrom('inbound_events').select(['id', 'result']).where('id', 'in', inboundIds).where('source', '=', 'slack').execute();
    let enqueued = 0;
    for (const row of rows) {
      const parsed = uploadSchema.safeParse((row.result as { upload?: unknown } | null)?.upload);
      if (!parsed.success) {
        logger.error({ inboundId: row.id }, 'a staged evidence form holds no upload request; skipped');
        continue;
      }
      if (await deps.jobs.enqueue(slackEvidenceUpload, parsed.data, { id: row.id })) enqueued++;
    }
    return { forms: rows.length, enqueued };
  },
});

export const slackEvidenceUpload = defineJob({
  name: 'slack.evidence-upload',
  schema: uploadSchema,
  policy: { retryDelaySeconds: 10, retryLimit: 5 },
  handler: async (payload, { deps, logger, job }: JobContext<SlackJobDeps>) => {
    const slack = deps.slack;
    if (!slack) throw Object.assign(new Error('Slack is not configured on this worker (SLACK_BOT_TOKEN)'), { code: 'slack_not_configured' });
    const user = await findUserById(deps.db, payload.userId);
    if (!user) return { skipped: 'user gone' };
    const actor = { surface: 'slack' as const, user, identity: { surface: 'slack' as const, tenant: payload.tenant ?? '', externalId: payload.slackUserId } };
    const client = await slack.tokens.clientFor(payload.tenant);
    const botToken = await slack.tokens.tokenFor(payload.tenant);
    const lines: string[] = [];
    for (const fileId of payload.fileIds) {
      const info = await client.files.info({ file: fileId });
      const file = info.file;
      const name = file?.name ?? fileId;
      const url = file?.url_private_download ?? file?.url_private;
      if (!file || !url) {
        lines.push(`• ${name}: Slack did not give us the file`);
        continue;
      }
      lines.push(
        await ingestEvidenceFile(
          { ...deps, logger },
          {
            name,
            url,
            allowed: (target) => isSlackFileUrl(target.href, deps.config.SLACK_API_URL),
            notAllowed: "the download address is not Slack's",
            headers: { authorization: `Bearer ${botToken}` },
            declaredBytes: file.size,
            actor,
            source: 'slack',
            controlId: payload.controlId,
            taskId: payload.taskId,
          },
        ),
      );
    }
    const target = payload.controlId ? `control ${payload.controlId}` : `task T-${payload.taskId ?? '?'}`;
    const text = `Evidence for ${target}:\n${lines.join('\n')}`;
    const dm = await slack.sender.openDm(payload.slackUserId, payload.tenant);
    if (dm.ok) await slack.sender.post({ key: `evidence-confirmation:${job.id}`, channel: dm.value, team: payload.tenant, text: escapeMrkdwn(text), blocks: toBlocks({ text, blocks: [{ type: 'section', text }] }) });
    return { files: lines.length };
  },
});
