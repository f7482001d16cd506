/**
 * Credentials at rest: AES-256-GCM with a random 96-bit IV per value, the key id stored with the ciphertext,
 * and associated data (AAD) naming what the value is (e.g. `slack:T123:bot_token`), so a ciphertext copied
 * into another row or field does not decrypt. Several keys can be loaded: the first encrypts, all decrypt,
 * which is how `PROJECTX_ENCRYPTION_KEY` rotation works (new key first, re-encrypt, drop the old).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EncryptionKey } from '../../config.ts';
import type { Logger } from '../../logger.ts';

export interface Envelope {
  v: 1;
  kid: string;
  iv: string;
  tag: string;
  ct: string;
}

export class DecryptionError extends Error {
  readonly code = 'decryption_failed';
}

export class Keyring {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly currentKeyId: string;

  constructor(keys: readonly EncryptionKey[]) {
    const first = keys[0];
    if (!first) throw new Error('a keyring needs at least one key');
    this.#keys = new Map(keys.map((key) => [key.id, key.key]));
    this.currentKeyId = first.id;
  }

  encrypt(plaintext: string, aad: string): Envelope {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(this.currentKeyId)!, iv);
    cipher.setAAD(Buffer.from(aad));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { v: 1, kid: this.currentKeyId, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ct: ct.toString('base64') };
  }

  decrypt(envelope: Envelope, aad: string): string {
    const key = this.#keys.get(envelope.kid);
    if (!key) throw new DecryptionError(`no key ${envelope.kid} is loaded (PROJECTX_ENCRYPTION_KEY)`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(envelope.iv, 'base64'));
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(envelope.ct, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      // Never say more: the value, the key and the AAD stay out of messages.
      throw new DecryptionError('a stored credential could not be decrypted (wrong key or tampered value)');
    }
  }

  /** True when the value was encrypted with an older key and should be re-encrypted. */
  isStale(envelope: Envelope): boolean {
    return envelope.kid !== this.currentKeyId;
  }
}

export function isEnvelope(value: unknown): value is Envelope {
  const v = value as Partial<Envelope> | null;
  return typeof v === 'object' && v !== null && v.v === 1 && typeof v.kid === 'string' && typeof v.iv === 'string' && typeof v.tag === 'string' && typeof v.ct === 'string';
}

/**
 * The keyring from `PROJECTX_ENCRYPTION_KEY`; with none set and the embedded database (a developer machine),
 * a key generated once and kept in the data directory (mode 0600). With a real database and no key there is
 * no keyring: features that store credentials refuse, saying what to set.
 */
export async function resolveKeyring(input: { keys: readonly EncryptionKey[] | undefined; embedded: boolean; dataDir: string; logger: Logger }): Promise<Keyring | undefined> {
  if (input.keys && input.keys.length > 0) return new Keyring(input.keys);
  if (!input.embedded) return undefined;
  const file = path.join(input.dataDir, 'encryption-key');
  try {
    const [id, base64] = (await readFile(file, 'utf8')).trim().split(':');
    if (id && base64 && Buffer.from(base64, 'base64').length === 32) return new Keyring([{ id, key: Buffer.from(base64, 'base64') }]);
  } catch {
    // none yet
  }
  const key = randomBytes(32);
  await writeFile(file, `dev1:${key.toString('base64')}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  input.logger.warn({ file }, 'PROJECTX_ENCRYPTION_KEY is not set: generated a development key in the data directory (set the variable in production)');
  return new Keyring([{ id: 'dev1', key }]);
}
