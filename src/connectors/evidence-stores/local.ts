/**
 * The local filesystem evidence store: content-addressed files under `<root>/<sha[0..2]>/<sha>`. A file is
 * written to a temporary name while it is hashed, fsynced, then renamed into place, so a reader never sees a
 * partial file and a crash leaves only a temporary to clean up.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type EvidenceStore, EvidenceTooLargeError, type StoredObject } from './store.ts';

export class LocalEvidenceStore implements EvidenceStore {
  readonly kind = 'local';
  readonly #root: string;

  constructor(root: string) {
    this.#root = path.resolve(root);
  }

  async put(content: Readable, options: { maxBytes: number }): Promise<StoredObject> {
    const tmpDir = path.join(this.#root, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    const tmp = path.join(tmpDir, `${Date.now()}-${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const file = await open(tmp, 'wx', 0o640);
    try {
      for await (const chunk of content) {
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        size += buffer.length;
        if (size > options.maxBytes) throw new EvidenceTooLargeError(options.maxBytes);
        hash.update(buffer);
        await file.write(buffer);
      }
      await file.sync();
    } catch (error) {
      await file.close();
      await rm(tmp, { force: true });
      content.destroy();
      throw error;
    }
    await file.close();
    const sha256 = hash.digest('hex');
    const finalPath = path.join(this.#root, sha256.slice(0, 2), sha256);
    const uri = pathToFileURL(finalPath).href;
    const alreadyStored = await stat(finalPath).then(() => true, () => false);
    if (alreadyStored) {
      await rm(tmp, { force: true });
      return { sha256, sizeBytes: size, uri, written: false };
    }
    await mkdir(path.dirname(finalPath), { recursive: true });
    await rename(tmp, finalPath);
    // The rename is durable only once its directory is: the evidence row is committed right after this.
    const dir = await open(path.dirname(finalPath), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return { sha256, sizeBytes: size, uri, written: true };
  }

  open(uri: string): Promise<Readable> {
    const file = fileURLToPath(uri);
    if (!file.startsWith(this.#root + path.sep)) return Promise.reject(new Error('that evidence is not in this store'));
    return Promise.resolve(createReadStream(file));
  }
}
