/**
 * A minimal zip writer for the Teams sideload package: entries stored (method 0, no compression) at the root,
 * with a fixed timestamp so the same inputs give the same bytes. The tests also build deflated archives with it
 * (a file a virus scanner must unpack to find).
 *
 * Written here rather than taken from a library because no zip library is in node_modules and the format is a
 * few dozen lines over node:zlib's crc32 and deflateRaw (APPNOTE.TXT 4.3: local headers, central directory, end
 * record); the package holds three small files, two of them PNGs that are already deflated.
 */
import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  data: Buffer;
}

const DOS_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1;
const UTF8_NAMES = 0x0800;

/** The entries as a zip archive, stored (no zip64: every entry and the archive must stay under 4 GiB and 65535 entries). */
export function storedZip(entries: readonly ZipEntry[]): Buffer {
  return zipArchive(entries, { deflate: false });
}

/** The entries as a zip archive, each stored or DEFLATE-compressed (method 8). */
export function zipArchive(entries: readonly ZipEntry[], options: { deflate: boolean }): Buffer {
  const method = options.deflate ? 8 : 0;
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, data: raw } of entries) {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(raw);
    const data = options.deflate ? deflateRawSync(raw) : raw;
    const local = Buffer.alloc(30 + nameBytes.length);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0
    local.writeUInt16LE(UTF8_NAMES, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10); // time 00:00:00
    local.writeUInt16LE(DOS_DATE_1980_01_01, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18); // compressed size
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    nameBytes.copy(local, 30);

    const central = Buffer.alloc(46 + nameBytes.length);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4); // made by: MS-DOS, 2.0
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(UTF8_NAMES, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(DOS_DATE_1980_01_01, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    // extra length, comment length, disk number, internal and external attributes: all zero
    central.writeUInt32LE(offset, 42);
    nameBytes.copy(central, 46);

    locals.push(local, data);
    centrals.push(central);
    offset += local.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
