/**
 * Group commit for hot write paths: callers `add()` an item and wait for its result; items that arrive while a
 * batch is being written are written together in the next one. At low load every item is written at once
 * (no timer, no added latency); under load one statement and one commit (one fsync) serve many requests.
 * The result of each item is known only after its batch committed, so "answered" still means "committed".
 *
 * `concurrency` writers may run at once (default 1). A write that takes several round trips (a transaction
 * of a few statements) leaves the database idle between them; a second and third writer fill those gaps.
 *
 * One bad item never fails the others: when a batch of several fails, each of its items is written again on
 * its own, so only the items that fail alone are rejected (a NUL byte PostgreSQL refuses, a deadlock, a
 * constraint one row breaks). A writer must therefore be safe to call again with some of the same items: each
 * call is one statement or one transaction, which commits all of its items or none.
 */
export class Batcher<I, O> {
  readonly #write: (items: readonly I[]) => Promise<O[]>;
  readonly #maxBatch: number;
  readonly #concurrency: number;
  readonly #maxQueued: number;
  readonly #onBatchFailure: ((error: unknown, items: number) => void) | undefined;
  #queue: { item: I; resolve: (value: O) => void; reject: (error: unknown) => void }[] = [];
  /** Writers running. Counted down synchronously as a writer finds the queue empty, never a tick later. */
  #active = 0;
  #idle: (() => void)[] = [];

  /** `write` returns one result per item, in order. */
  /** `onBatchFailure`: told (to log it) when a batch failed and its items are being written one by one. */
  constructor(write: (items: readonly I[]) => Promise<O[]>, options: { maxBatch?: number; concurrency?: number; maxQueued?: number; onBatchFailure?: (error: unknown, items: number) => void } = {}) {
    this.#write = write;
    this.#maxBatch = options.maxBatch ?? 200;
    this.#concurrency = Math.max(1, options.concurrency ?? 1);
    this.#maxQueued = options.maxQueued ?? Number.POSITIVE_INFINITY;
    this.#onBatchFailure = options.onBatchFailure;
  }

  /** Rejects with `BatcherFull` (nothing written) when `maxQueued` items already wait: the caller sheds load. */
  add(item: I): Promise<O> {
    if (this.#queue.length >= this.#maxQueued) return Promise.reject(new BatcherFull(`${this.#queue.length} items are waiting to be written`));
    const result = new Promise<O>((resolve, reject) => this.#queue.push({ item, resolve, reject }));
    if (this.#active < this.#concurrency) {
      this.#active++;
      void this.#drain();
    }
    return result;
  }

  /** Resolves when everything added so far is written. */
  flush(): Promise<void> {
    return this.#active === 0 ? Promise.resolve() : new Promise((resolve) => this.#idle.push(resolve));
  }

  /** The failed batch again, item by item: only what fails alone is rejected. */
  async #oneByOne(batch: readonly { item: I; resolve: (value: O) => void; reject: (error: unknown) => void }[], error: unknown): Promise<void> {
    this.#onBatchFailure?.(error, batch.length);
    for (const entry of batch) {
      try {
        const [result] = await this.#write([entry.item]);
        entry.resolve(result as O);
      } catch (failure) {
        entry.reject(failure);
      }
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        try {
          const results = await this.#write(batch.map((entry) => entry.item));
          batch.forEach((entry, index) => entry.resolve(results[index] as O));
        } catch (error) {
          if (batch.length === 1) batch[0]!.reject(error);
          else await this.#oneByOne(batch, error);
        }
      }
    } finally {
      // Same turn as the last resolve: an add() made by a caller that was just answered sees the free slot.
      this.#active--;
      if (this.#active === 0) for (const resolve of this.#idle.splice(0)) resolve();
    }
  }
}

export class BatcherFull extends Error {
  readonly code = 'batcher_full';
}
