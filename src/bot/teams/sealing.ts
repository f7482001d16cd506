/**
 * What of a Teams activity is kept at rest. A file attachment's `content.downloadUrl` is a pre-authenticated
 * SharePoint / OneDrive address (anyone holding it can download the file until it expires): a bearer credential,
 * like Slack's `response_url` (src/bot/slack/sealing.ts). The recorded body is the activity without them; they
 * are kept encrypted beside it (`inbound_events.sealed`, AES-GCM bound to the delivery), by attachment index,
 * for the evidence job that downloads the files. Without a keyring they are dropped (and evidence from Teams is
 * refused: src/bot/teams/evidence.ts). Everything else is kept as received, for operators and replays.
 */
import type { Envelope, Keyring } from '../../connectors/sdk/crypto.ts';

type Activity = Record<string, unknown>;

/** What a delivery's sealed envelope is bound to. */
export const teamsSealedAad = (deliveryId: string) => `inbound:teams:${deliveryId}`;

/** The activity to store (JSON bytes, without download URLs) and the encrypted URLs by attachment index (null: none, or no keyring). */
export function sealActivity(activity: Activity, deliveryId: string, keyring: Keyring | undefined): { body: Buffer; sealed: string | null } {
  if (!Array.isArray(activity.attachments)) return { body: Buffer.from(JSON.stringify(activity)), sealed: null };
  const urls: Record<string, string> = {};
  const attachments = activity.attachments.map((attachment: unknown, index) => {
    const content = attachment !== null && typeof attachment === 'object' ? (attachment as { content?: unknown }).content : undefined;
    if (content === null || typeof content !== 'object' || !('downloadUrl' in content)) return attachment;
    const { downloadUrl, ...rest } = content as Record<string, unknown>;
    if (typeof downloadUrl === 'string') urls[String(index)] = downloadUrl;
    return { ...(attachment as object), content: rest };
  });
  const sealed = Object.keys(urls).length > 0 && keyring ? JSON.stringify(keyring.encrypt(JSON.stringify(urls), teamsSealedAad(deliveryId))) : null;
  return { body: Buffer.from(JSON.stringify({ ...activity, attachments })), sealed };
}

/** The download URLs sealed with a delivery, by attachment index (empty when there are none or they cannot be read). */
export function unsealDownloadUrls(sealed: unknown, deliveryId: string, keyring: Keyring | undefined): Record<string, string> {
  if (!sealed || !keyring) return {};
  try {
    return JSON.parse(keyring.decrypt(sealed as Envelope, teamsSealedAad(deliveryId))) as Record<string, string>;
  } catch {
    return {}; // an old key or a moved row
  }
}
