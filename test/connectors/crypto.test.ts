import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DecryptionError, Keyring, resolveKeyring } from '../../src/connectors/sdk/crypto.ts';
import { captureLogs } from '../support/logs.ts';

const k1 = { id: 'k1', key: Buffer.alloc(32, 1) };
const k2 = { id: 'k2', key: Buffer.alloc(32, 2) };

describe('Keyring (AES-256-GCM, key id kept, AAD bound)', () => {
  it('round-trips, never stores the plaintext, and uses a fresh IV each time', () => {
    const ring = new Keyring([k1]);
    const a = ring.encrypt('xoxb-secret-token', 'slack:E:T:bot_token');
    const b = ring.encrypt('xoxb-secret-token', 'slack:E:T:bot_token');
    expect(a.kid).toBe('k1');
    expect(JSON.stringify(a)).not.toContain('xoxb');
    expect(a.iv).not.toBe(b.iv);
    expect(ring.decrypt(a, 'slack:E:T:bot_token')).toBe('xoxb-secret-token');
  });

  it('refuses a tampered ciphertext and a value moved to another field (AAD), without saying more', () => {
    const ring = new Keyring([k1]);
    const sealed = ring.encrypt('xoxb-secret-token', 'slack:E:T:bot_token');
    const flipped = { ...sealed, ct: Buffer.from(Buffer.from(sealed.ct, 'base64').map((byte, i) => (i === 0 ? byte ^ 1 : byte))).toString('base64') };
    expect(() => ring.decrypt(flipped, 'slack:E:T:bot_token')).toThrow(DecryptionError);
    expect(() => ring.decrypt(sealed, 'slack:E:T:refresh_token')).toThrow('a stored credential could not be decrypted (wrong key or tampered value)');
  });

  it('rotates: the new key encrypts, the old still decrypts and is reported stale; a dropped key cannot', () => {
    const old = new Keyring([k1]).encrypt('v', 'aad');
    const rotated = new Keyring([k2, k1]);
    expect(rotated.decrypt(old, 'aad')).toBe('v');
    expect(rotated.isStale(old)).toBe(true);
    expect(rotated.isStale(rotated.encrypt('v', 'aad'))).toBe(false);
    expect(() => new Keyring([k2]).decrypt(old, 'aad')).toThrow('no key k1 is loaded');
  });

  it('generates a development key once (mode 0600) for the embedded database, and none for a real one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'projectx-keyring-'));
    try {
      const { logger } = captureLogs();
      const first = await resolveKeyring({ keys: undefined, embedded: true, dataDir: dir, logger });
      const again = await resolveKeyring({ keys: undefined, embedded: true, dataDir: dir, logger });
      const sealed = first!.encrypt('v', 'aad');
      expect(again!.decrypt(sealed, 'aad')).toBe('v');
      expect((await stat(path.join(dir, 'encryption-key'))).mode & 0o777).toBe(0o600);
      expect(await readFile(path.join(dir, 'encryption-key'), 'utf8')).toMatch(/^dev1:/);
      expect(await resolveKeyring({ keys: undefined, embedded: false, dataDir: dir, logger })).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
