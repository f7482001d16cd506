/**
 * The Teams app icons, drawn in code so their origin is this file: `color.png` (192×192, a white X on the
 * accent colour, inside Teams' safe area) and `outline.png` (32×32, the same X in white on transparent, which
 * is what Teams asks of an outline icon).
 *
 * The PNG encoder is written here with node:zlib (deflate and crc32) rather than taken from a library: it is
 * forty lines for the one format we need (8-bit RGBA, no interlace), the output is deterministic, and it keeps
 * an image dependency out of the service for two fixed pictures.
 */
import { crc32, deflateSync } from 'node:zlib';

/** The manifest's `accentColor`; also the colour icon's background. */
export const ACCENT_COLOR = '#3B4BA8';

export const ICON_SIZES = { color: 192, outline: 32 } as const;

type Rgb = readonly [number, number, number];
const WHITE: Rgb = [255, 255, 255];

const hex = (colour: string): Rgb => [1, 3, 5].map((at) => Number.parseInt(colour.slice(at, at + 2), 16)) as unknown as Rgb;

/** 8-bit RGBA pixels (row-major, 4 bytes each) as a PNG. */
export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  if (rgba.length !== width * height * 4) throw new Error(`expected ${width * height * 4} bytes of RGBA, got ${rgba.length}`);
  const rows = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    rows[y * (width * 4 + 1)] = 0; // filter: none
    rows.set(rgba.subarray(y * width * 4, (y + 1) * width * 4), y * (width * 4 + 1) + 1);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 6, 0, 0, 0], 8); // bit depth 8, colour type 6 (RGBA), deflate, adaptive filtering, no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(rows, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/**
 * How much of the pixel at (x, y) the X covers (0..1), by 4×4 supersampling: two bars along the diagonals of a
 * square inset by `inset` pixels, each `stroke` pixels wide.
 */
function xCoverage(size: number, x: number, y: number, inset: number, stroke: number): number {
  const lo = inset;
  const hi = size - inset;
  let hits = 0;
  for (let sy = 0; sy < 4; sy++) {
    for (let sx = 0; sx < 4; sx++) {
      const px = x + (sx + 0.5) / 4;
      const py = y + (sy + 0.5) / 4;
      if (px < lo || px > hi || py < lo || py > hi) continue;
      const toMain = Math.abs(px - py) / Math.SQRT2;
      const toAnti = Math.abs(px + py - size) / Math.SQRT2;
      if (Math.min(toMain, toAnti) <= stroke / 2) hits++;
    }
  }
  return hits / 16;
}

/** The 192×192 colour icon: the X in white over the accent colour, filling the whole square. */
export function colorIcon(): Buffer {
  const size = ICON_SIZES.color;
  const background = hex(ACCENT_COLOR);
  const rgba = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const cover = xCoverage(size, x, y, 52, 22);
      const at = (y * size + x) * 4;
      for (let c = 0; c < 3; c++) rgba[at + c] = Math.round(background[c]! * (1 - cover) + WHITE[c]! * cover);
      rgba[at + 3] = 255;
    }
  }
  return encodePng(size, size, rgba);
}

/** The 32×32 outline icon: the X in white, everything else fully transparent. */
export function outlineIcon(): Buffer {
  const size = ICON_SIZES.outline;
  const rgba = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const at = (y * size + x) * 4;
      const cover = xCoverage(size, x, y, 5, 4);
      if (cover === 0) continue; // transparent black
      rgba.set([...WHITE, Math.round(cover * 255)], at);
    }
  }
  return encodePng(size, size, rgba);
}
