/**
 * What of a Slack request is kept at rest. A `response_url` (and a modal's `response_urls`) lets whoever holds it
 * post into the conversation for 30 minutes: a bearer credential. The recorded body is the parsed payload as
 * JSON without them; they are kept encrypted beside it (`inbound_events.sealed`, AES-GCM bound to the
 * delivery), so that a redelivery within their lifetime can still answer the person. Without a keyring they
 * are dropped. Everything else (ids, text, values) is kept as received, for operators and replays.
 */
import type { Envelope, Keyring } from '../../connectors/sdk/crypto.ts';

type Body = Record<string, unknown>;

/** The fields that are bearer credentials. */
const SEALED_FIELDS = ['response_url', 'response_urls'] as const;

/** What a delivery's sealed envelope is bound to. */
export const sealedAad = (deliveryId: string) => `inbound:slack:${deliveryId}`;

/** The body to store (JSON bytes, without response URLs) and the encrypted URLs (null: none, or no keyring). */
export function sealBody(body: Body, deliveryId: string, keyring: Keyring | undefined): { body: Buffer; sealed: string | null } {
  const kept: Body = {};
  let secrets: Body | undefined;
  for (const [key, value] of Object.entries(body)) {
    if ((SEALED_FIELDS as readonly string[]).includes(key)) (secrets ??= {})[key] = value;
    else kept[key] = value;
  }
  const sealed = secrets && keyring ? JSON.stringify(keyring.encrypt(JSON.stringify(secrets), sealedAad(deliveryId))) : null;
  return { body: Buffer.from(JSON.stringify(kept)), sealed };
}

/** The body as it was handed to the listeners: the stored JSON with its response URLs back when they can be read. */
export function unsealBody(stored: Buffer, sealed: unknown, deliveryId: string, keyring: Keyring | undefined): Body {
  const body = parseStored(stored.toString('utf8'));
  if (!sealed || !keyring) return body;
  try {
    return { ...body, ...(JSON.parse(keyring.decrypt(sealed as Envelope, sealedAad(deliveryId))) as Body) };
  } catch {
    return body; // an old key or a moved row: the listeners answer without the URLs
  }
}

/** The stored JSON; or, for a body recorded as Slack sent it before sealing existed, its form (a `payload` field holds JSON). */
function parseStored(text: string): Body {
  if (text.trimStart().startsWith('{')) return JSON.parse(text) as Body;
  const form = Object.fromEntries(new URLSearchParams(text));
  return typeof form.payload === 'string' ? (JSON.parse(form.payload) as Body) : form;
}
