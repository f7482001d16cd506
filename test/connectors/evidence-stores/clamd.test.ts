import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ScannerUnavailableError, clamdScanner, parseClamavUrl } from '../../../src/connectors/evidence-stores/clamd.ts';
import { type Clamd, startClamd } from '../../servers/clamd.ts';
import { tempPath } from '../../support/temp.ts';
import { EICAR } from '../../support/eicar.ts';
import { zipArchive } from '../../../src/bot/teams/manifest-zip.ts';
import { freePort } from '../../support/fleet.ts';

const MB = 1024 * 1024;

/** `data` in chunks of the given sizes, in turn, each in a later turn of the event loop (as from a download). */
async function* inChunks(data: Buffer, sizes: number[], read = { chunks: 0 }): AsyncGenerator<Buffer> {
  for (let offset = 0, i = 0; offset < data.length; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    const size = sizes[i % sizes.length]!;
    read.chunks++;
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

async function failure(promise: Promise<unknown>): Promise<ScannerUnavailableError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(ScannerUnavailableError);
  return error as ScannerUnavailableError;
}

/** A clamd impostor on 127.0.0.1: `onConnection` decides what it answers. */
async function fakeClamd(onConnection: (socket: net.Socket) => void): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket.on('close', () => sockets.delete(socket)).on('error', () => {}));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('clamdScanner against a real clamd (INSTREAM)', () => {
  const scanner = clamdScanner(inject('clamav').url);

  it('finds EICAR (the 68-byte test file, MD5 44d88612…) with the committed test signatures', async () => {
    expect(EICAR.length).toBe(68);
    expect(createHash('md5').update(EICAR).digest('hex')).toBe('44d88612fea8a8f36de82e1278abb02f');
    const verdict = await scanner.scan(Readable.from([EICAR]));
    expect(verdict).toEqual({ clean: false, signature: expect.stringMatching(/^Test\.EICAR\.Custom-(NDB|HDB)\.UNOFFICIAL$/) });
  });

  it('finds EICAR inside a DEFLATE-compressed zip, next to a harmless file', async () => {
    const zip = zipArchive([{ name: 'access-review.txt', data: Buffer.from('reviewed by ann\n'.repeat(500)) }, { name: 'tools/eicar.com', data: EICAR }], { deflate: true });
    expect(zip.includes(Buffer.from('EICAR-STANDARD'))).toBe(false);
    const verdict = await scanner.scan(inChunks(zip, [7, 100]));
    expect(verdict).toEqual({ clean: false, signature: expect.stringMatching(/Test\.EICAR\.Custom/) });
  });

  it('passes a clean 3 MB file streamed in many chunks, small and over 64 KiB, reading all of it', async () => {
    const read = { chunks: 0 };
    expect(await scanner.scan(inChunks(randomBytes(3 * MB), [1, 1000, 200 * 1024, 65_536, 65_537], read))).toEqual({ clean: true });
    expect(read.chunks).toBeGreaterThan(20);
    expect(await scanner.scan(Readable.from(randomBytes(3 * MB)))).toEqual({ clean: true });
  });

  it('passes an empty file', async () => {
    expect(await scanner.scan(Readable.from([]))).toEqual({ clean: true });
  });

  it('answers PING', async () => {
    await expect(scanner.ping()).resolves.toBeUndefined();
    expect(scanner.describe).toBe(inject('clamav').url);
  });

  it('rejects with the source\'s own error when the source fails, not as a scanner failure', async () => {
    async function* broken(): AsyncGenerator<Buffer> {
      yield Buffer.from('first part');
      await Promise.reject(new Error('the download broke'));
    }
    await expect(scanner.scan(broken())).rejects.toThrow('the download broke');
  });
});

describe('a file over clamd\'s StreamMaxLength', () => {
  let limited: Clamd;
  beforeAll(async () => {
    limited = await startClamd(tempPath('clamd-1m'), { streamMaxLength: '1M' });
  });
  afterAll(() => limited.stop());

  it('is refused as scan_limit_exceeded, never clean (2 MB in one buffer, and in 64 KiB chunks)', async () => {
    const data = randomBytes(2 * MB);
    for (const source of [Readable.from(data), inChunks(data, [64 * 1024])]) {
      const error = await failure(clamdScanner(limited.url).scan(source));
      expect(error.code).toBe('scan_limit_exceeded');
      expect(error.message).toMatch(/^clamd at tcp:\/\/127\.0\.0\.1:\d+ stopped reading the stream \(\d+(\.\d)? MB sent\)/);
    }
  });

  it('stops reading the caller\'s stream when clamd stops, and leaves it to the caller (not destroyed)', async () => {
    const chunk = randomBytes(64 * 1024);
    const produced = { chunks: 0 };
    const source = Readable.from((function* () {
      for (; produced.chunks < 1024; produced.chunks++) yield chunk; // 64 MB, made as it is read
    })());
    expect((await failure(clamdScanner(limited.url).scan(source))).code).toBe('scan_limit_exceeded');
    expect(produced.chunks).toBeLessThan(1024);
    expect({ destroyed: source.destroyed, ended: source.readableEnded }).toEqual({ destroyed: false, ended: false });
    source.destroy();
  });

  it('still passes a file under the limit', async () => {
    expect(await clamdScanner(limited.url).scan(Readable.from(randomBytes(MB / 2)))).toEqual({ clean: true });
  });
});

describe('a file over clamd\'s MaxFileSize (within its StreamMaxLength)', () => {
  let cut: Clamd;
  beforeAll(async () => {
    cut = await startClamd(tempPath('clamd-maxfile'), { streamMaxLength: '4M', maxFileSize: '1M' });
  });
  afterAll(() => cut.stop());

  it('is refused as scan_limit_exceeded (Heuristics.Limits.Exceeded is neither clean nor a virus)', async () => {
    const error = await failure(clamdScanner(cut.url).scan(Readable.from(randomBytes(2 * MB))));
    expect(error.code).toBe('scan_limit_exceeded');
    expect(error.message).toMatch(/could not scan it whole \(Heuristics\.Limits\.Exceeded\.Max\w+\): raise its MaxFileSize and MaxScanSize/);
  });
});

describe('clamd over its Unix socket, and once it is stopped', () => {
  let own: Clamd;
  beforeAll(async () => {
    own = await startClamd(tempPath('clamd-own'));
  });
  afterAll(() => own.stop());

  it('scans through unix:///path and a bare socket path, then fails closed once clamd is stopped', async () => {
    const overUrl = clamdScanner(`unix://${own.socketPath}`);
    const overPath = clamdScanner(own.socketPath);
    const overTcp = clamdScanner(own.url);
    expect(overUrl.describe).toBe(`unix://${own.socketPath}`);
    expect(await overUrl.scan(Readable.from([EICAR]))).toMatchObject({ clean: false });
    expect(await overPath.scan(Readable.from([Buffer.from('a clean note')]))).toEqual({ clean: true });
    await overPath.ping();

    await own.stop();
    for (const scanner of [overUrl, overPath, overTcp]) {
      const error = await failure(scanner.scan(Readable.from([Buffer.from('a clean note')])));
      expect(error.code).toBe('scanner_unavailable');
      expect((await failure(scanner.ping())).code).toBe('scanner_unavailable');
    }
  });
});

describe('clamdScanner fails closed', () => {
  it('on a port nothing listens on, without waiting for its timeout', async () => {
    const port = await freePort();
    const scanner = clamdScanner(`tcp://127.0.0.1:${port}`);
    const error = await failure(scanner.scan(Readable.from([EICAR])));
    expect(error).toMatchObject({ code: 'scanner_unavailable', message: `clamd at tcp://127.0.0.1:${port} refused the connection` });
    expect((await failure(scanner.ping())).code).toBe('scanner_unavailable');
  });

  it('on a socket path that does not exist', async () => {
    const error = await failure(clamdScanner(tempPath('no-clamd', '.sock')).ping());
    expect(error.message).toMatch(/is not there \(no such socket\)$/);
  });

  it('on a reply it does not know, a hang-up, and silence', async () => {
    const atEnd = (socket: net.Socket, then: () => void) => socket.on('data', (data: Buffer) => data.subarray(-4).equals(Buffer.alloc(4)) && then());
    const cases: { name: string; onConnection: (socket: net.Socket) => void; message: RegExp; timeoutMs?: number }[] = [
      { name: 'unknown reply', onConnection: (socket) => atEnd(socket, () => socket.end('stream: probably fine\0')), message: /gave no verdict: "stream: probably fine"$/ },
      { name: 'hang-up', onConnection: (socket) => atEnd(socket, () => socket.end()), message: /closed the connection without a verdict$/ },
      { name: 'silence', onConnection: (socket) => socket.resume(), message: /sent nothing for 0\.2 s$/, timeoutMs: 200 },
    ];
    for (const { name, onConnection, message, timeoutMs } of cases) {
      const fake = await fakeClamd(onConnection);
      try {
        const scanner = clamdScanner(fake.url, timeoutMs ? { timeoutMs } : {});
        const error = await failure(scanner.scan(Readable.from([Buffer.from('a clean note')])));
        expect({ name, code: error.code, message: error.message }).toEqual({ name, code: 'scanner_unavailable', message: expect.stringMatching(message) });
      } finally {
        await fake.close();
      }
    }
  });

  it('on an OK that comes before the whole file was sent (it would be about part of it)', async () => {
    let replied = () => {};
    const reply = new Promise<void>((resolve) => (replied = resolve));
    const fake = await fakeClamd((socket) => socket.once('data', () => socket.end('stream: OK\0', replied)));
    async function* slowSource(): AsyncGenerator<Buffer> {
      yield Buffer.from('the first part');
      await reply;
      yield Buffer.from('the part with something in it');
    }
    try {
      const error = await failure(clamdScanner(fake.url).scan(slowSource()));
      expect(error.message).toMatch(/answered before the end of the stream: "stream: OK"$/);
    } finally {
      await fake.close();
    }
  });

  it('takes a hang-up mid-stream with no answer for the size limit only while clamd still answers PING', async () => {
    // What the real clamd does at its limit when our write meets its reset before we could read its answer.
    for (const { stillUp, code } of [{ stillUp: true, code: 'scan_limit_exceeded' }, { stillUp: false, code: 'scanner_unavailable' }]) {
      let hungUp = () => {};
      const hangUp = new Promise<void>((resolve) => (hungUp = resolve));
      const fake = await fakeClamd((socket) => socket.once('data', (data: Buffer) => {
        if (data.toString('latin1').startsWith('zPING\0')) return void socket.end('PONG\0');
        socket.resetAndDestroy();
        if (!stillUp) void fake.close();
        hungUp();
      }));
      async function* source(): AsyncGenerator<Buffer> {
        yield Buffer.from('the first part');
        await hangUp;
        for (let i = 0; i < 10; i++) yield Buffer.alloc(64 * 1024, i);
      }
      try {
        const error = await failure(clamdScanner(fake.url).scan(source()));
        expect({ stillUp, code: error.code }).toEqual({ stillUp, code });
        expect(error.message).toMatch(stillUp ? /and hung up \(ECONNRESET\), yet answers PING: over its StreamMaxLength$/ : /hung up after 0 MB without a verdict \(ECONNRESET\)$/);
      } finally {
        await fake.close();
      }
    }
  });
});

describe('parseClamavUrl', () => {
  it('accepts tcp://host:port, unix:///path and an absolute socket path', () => {
    expect(parseClamavUrl('tcp://127.0.0.1:3310')).toEqual({ host: '127.0.0.1', port: 3310 });
    expect(parseClamavUrl('tcp://clamav.internal:3310/')).toEqual({ host: 'clamav.internal', port: 3310 });
    expect(parseClamavUrl('tcp://[::1]:3310')).toEqual({ host: '::1', port: 3310 });
    expect(parseClamavUrl('unix:///run/clamav/clamd.ctl')).toEqual({ path: '/run/clamav/clamd.ctl' });
    expect(parseClamavUrl('unix:///tmp/with%20space.sock')).toEqual({ path: '/tmp/with space.sock' });
    expect(parseClamavUrl('/run/clamav/clamd.ctl')).toEqual({ path: '/run/clamav/clamd.ctl' });
    expect(clamdScanner('/run/clamav/clamd.ctl').describe).toBe('unix:///run/clamav/clamd.ctl');
    expect(clamdScanner('tcp://[::1]:3310').describe).toBe('tcp://[::1]:3310');
  });

  it('refuses anything else, saying which forms it takes', () => {
    const forms = 'it must be tcp://host:port, unix:///path/to/socket or an absolute socket path';
    for (const [url, why] of [
      ['tcp://127.0.0.1', 'has no valid port'],
      ['tcp://127.0.0.1:0', 'has no valid port'],
      ['tcp://127.0.0.1:3310/scan', 'has a path'],
      ['http://127.0.0.1:3310', 'has the scheme http:'],
      ['unix://run/clamav/clamd.ctl', 'names a host (write unix:///path, three slashes)'],
      ['unix:///', 'has no socket path'],
      ['clamd.sock', 'is not a URL'],
      ['', 'is not a URL'],
    ] as const) {
      expect(() => parseClamavUrl(url)).toThrow(`CLAMAV_URL "${url}" ${why}: ${forms}`);
    }
    expect(() => parseClamavUrl('tcp://user:secret@127.0.0.1:3310')).toThrow(`CLAMAV_URL "tcp://…@127.0.0.1:3310" has parts clamd has no use for: ${forms}`);
  });
});
