/**
 * The Teams app manifest (manifests/teams/manifest.json) and its sideload package: valid offline against
 * Microsoft's own JSON Schema (the newest that `@microsoft/app-manifest` bundles, compiled the way that
 * package's validator does: draft-04 with the uri, email and regex formats), its bot commands the same as the
 * command registry both ways, the icons the sizes and kinds Teams asks for, and `npm run teams:package` writing
 * a zip with the deployment's app id and host, or refusing without them.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { crc32, inflateSync } from 'node:zlib';
import ajvDraft04 from 'ajv-draft-04';
import ajvFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/bot/commands/registry.ts';
import { USAGE, parseCommand } from '../../../src/bot/commands/parse.ts';
import { ACCENT_COLOR, ICON_SIZES, colorIcon, outlineIcon } from '../../../src/bot/teams/manifest-icons.ts';
import { packageTeamsApp } from '../../../src/bot/teams/manifest-package.ts';
import {
  APP_ID_PLACEHOLDER,
  HOST_PLACEHOLDER,
  TEAMS_MANIFEST_DIR,
  TEAMS_MANIFEST_VERSION,
  readTeamsManifestTemplate,
  renderTeamsManifest,
  teamsCommandLists,
} from '../../../src/bot/teams/manifest.ts';
import { tempPath } from '../../support/temp.ts';

type Json = Record<string, unknown>;
interface Manifest {
  manifestVersion: string;
  version: string;
  id: string;
  accentColor: string;
  icons: { color: string; outline: string };
  bots: { botId: string; scopes: string[]; supportsFiles?: boolean; commandLists: { scopes: string[]; commands: { title: string; description: string }[] }[] }[];
  validDomains: string[];
  webApplicationInfo: { id: string; resource: string };
  developer: { websiteUrl: string; privacyUrl: string; termsOfUseUrl: string };
}
const view = (manifest: Json) => manifest as unknown as Manifest;

const ROOT = new URL('../../../', import.meta.url);
const schemasDir = join(dirname(createRequire(import.meta.url).resolve('@microsoft/app-manifest/package.json')), 'build/json-schemas/teams');
const schema = JSON.parse(readFileSync(join(schemasDir, `v${TEAMS_MANIFEST_VERSION}`, 'MicrosoftTeams.schema.json'), 'utf8')) as Json;

// The same settings as AppManifestUtils.validateAgainstSchema in @microsoft/app-manifest (its schemas are draft-04).
const ajv = new ajvDraft04.default({ allErrors: true, strictTypes: false });
ajvFormats.default(ajv, ['uri', 'email', 'regex']);
const validate = ajv.compile(schema);

const APP_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const PUBLIC_URL = 'https://bot.acme.test/projectx/';
const sorted = (values: readonly string[]) => [...values].sort();

describe('the Teams app manifest', () => {
  const template = readTeamsManifestTemplate();
  const rendered = renderTeamsManifest({ MICROSOFT_APP_ID: APP_ID, PUBLIC_URL });

  it('uses the newest manifest schema @microsoft/app-manifest bundles', () => {
    const versions = readdirSync(schemasDir).filter((name) => /^v\d+\.\d+$/.test(name)).map((name) => name.slice(1));
    const newest = versions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1);
    expect(newest).toBe(TEAMS_MANIFEST_VERSION);
    expect(view(template).manifestVersion).toBe(TEAMS_MANIFEST_VERSION);
    expect(template.$schema).toBe(`https://developer.microsoft.com/json-schemas/teams/v${TEAMS_MANIFEST_VERSION}/MicrosoftTeams.schema.json`);
    expect(view(template).version).toBe((JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { version: string }).version);
  });

  it("is valid against Microsoft's schema, as committed and as rendered", () => {
    for (const candidate of [template, rendered]) {
      const ok = validate(candidate);
      expect(validate.errors ?? []).toEqual([]);
      expect(ok).toBe(true);
    }
    // The validator does refuse what the schema forbids, so the check above can fail.
    expect(validate({ ...rendered, accentColor: 'indigo' })).toBe(false);
    expect(validate({ ...rendered, bots: [{ ...view(rendered).bots[0], scopes: ['groupchat'] }] })).toBe(false);
    expect(validate({ ...rendered, id: '${{TEAMS_APP_ID}}' })).toBe(false);
    expect(validate({ ...rendered, surprise: true })).toBe(false);
  });

  it('offers the bot in personal, team and group chats, with files, and one bot only', () => {
    const m = view(rendered);
    expect(m.bots).toHaveLength(1);
    expect(sorted(m.bots[0]!.scopes)).toEqual(['groupChat', 'personal', 'team']);
    expect(m.bots[0]!.supportsFiles).toBe(true);
    expect(m.accentColor).toBe(ACCENT_COLOR);
    expect(m.icons).toEqual({ color: 'color.png', outline: 'outline.png' });
  });

  it('declares exactly the commands the code registers, both ways, in every scope of the bot', () => {
    const verbs = COMMANDS.map((command) => command.verb);
    expect(sorted(verbs)).toEqual(sorted(Object.keys(USAGE))); // the registry covers every verb the parser knows
    for (const manifest of [template, rendered]) {
      const bot = view(manifest).bots[0]!;
      expect(bot.commandLists, 'run npm run teams:package -- --refresh').toEqual(teamsCommandLists()); // the committed file is what the registry generates
      for (const list of bot.commandLists) {
        expect(sorted(list.scopes)).toEqual(sorted(bot.scopes));
        const titles = list.commands.map((command) => command.title);
        expect(sorted(titles)).toEqual(sorted(verbs)); // every manifest command is registered, and every registered one listed
        for (const command of list.commands) expect(command.description).toContain(COMMANDS.find((spec) => spec.verb === command.title)!.summary.replaceAll('`', ''));
      }
    }
    // Each title, typed as a command, reaches its own verb (never "unknown command").
    for (const title of view(rendered).bots[0]!.commandLists[0]!.commands.map((command) => command.title)) {
      const parsed = parseCommand(title);
      expect(parsed.ok ? parsed.command.verb : parsed.error.verb, title).toBe(title);
    }
    expect(parseCommand('not-a-command')).toMatchObject({ ok: false, error: { code: 'unknown_command' } });
    // The generator follows the registry: a new command appears, a removed one disappears.
    const extra = [...COMMANDS, { verb: 'snooze', usage: '/projectx snooze', summary: 'snooze' }];
    expect(teamsCommandLists(extra)[0]!.commands.map((command) => command.title)).toContain('snooze');
    expect(teamsCommandLists(COMMANDS.slice(1))[0]!.commands.map((command) => command.title)).not.toContain('help');
  });

  it('puts the app id and PUBLIC_URL host everywhere the placeholders were', () => {
    const m = view(rendered);
    expect(JSON.stringify(rendered)).not.toContain(APP_ID_PLACEHOLDER);
    expect(JSON.stringify(rendered)).not.toContain(HOST_PLACEHOLDER);
    expect([m.id, m.bots[0]!.botId, m.webApplicationInfo.id]).toEqual([APP_ID, APP_ID, APP_ID]);
    expect(m.webApplicationInfo.resource).toBe(`api://bot.acme.test/${APP_ID}`);
    expect(m.validDomains).toEqual(['bot.acme.test']);
    expect(m.developer.websiteUrl).toBe('https://bot.acme.test/projectx');
    // The template itself only holds placeholders, never a real deployment's values.
    expect(view(template).id).toBe(APP_ID_PLACEHOLDER);
    expect(view(template).validDomains).toEqual([HOST_PLACEHOLDER]);
  });
});

interface Png {
  width: number;
  height: number;
  colourType: number;
  rgba: Buffer;
}

/** Reads what we check of a PNG: the IHDR fields and, for 8-bit RGBA without filtering, the pixels. */
function readPng(bytes: Buffer): Png {
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(bytes.toString('latin1', 12, 16)).toBe('IHDR');
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  const colourType = bytes[25]!;
  const idat: Buffer[] = [];
  for (let at = 8; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    expect(bytes.readUInt32BE(at + 8 + length), `${type} crc`).toBe(crc32(bytes.subarray(at + 4, at + 8 + length)));
    if (type === 'IDAT') idat.push(bytes.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const rgba = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width * 4 + 1)], 'filter type').toBe(0);
    raw.copy(rgba, y * width * 4, y * (width * 4 + 1) + 1, (y + 1) * (width * 4 + 1));
  }
  return { width, height, colourType, rgba };
}

describe('the Teams app icons', () => {
  it('are a 192×192 opaque colour icon and a 32×32 white-on-transparent outline icon', () => {
    const color = readPng(colorIcon());
    expect([color.width, color.height, color.colourType]).toEqual([ICON_SIZES.color, ICON_SIZES.color, 6]);
    expect(color.rgba.filter((_value, at) => at % 4 === 3 && _value !== 255)).toHaveLength(0); // every pixel opaque

    const outline = readPng(outlineIcon());
    expect([outline.width, outline.height, outline.colourType]).toEqual([ICON_SIZES.outline, ICON_SIZES.outline, 6]);
    let transparent = 0;
    let drawn = 0;
    for (let at = 0; at < outline.rgba.length; at += 4) {
      const [r, g, b, a] = outline.rgba.subarray(at, at + 4);
      if (a === 0) transparent++;
      else {
        drawn++;
        expect([r, g, b]).toEqual([255, 255, 255]);
      }
    }
    expect(transparent).toBeGreaterThan(drawn); // a symbol, not a filled square
    expect(drawn).toBeGreaterThan(32);
  });

  it('are committed as the generator draws them (npm run teams:package -- --refresh)', () => {
    expect(readFileSync(new URL('color.png', TEAMS_MANIFEST_DIR))).toEqual(colorIcon());
    expect(readFileSync(new URL('outline.png', TEAMS_MANIFEST_DIR))).toEqual(outlineIcon());
  });
});

/** The entries of a zip, by its central directory, each checked against its local header and CRC. */
function readZip(zip: Buffer): Map<string, Buffer> {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  expect(end).toBeGreaterThan(0);
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const entries = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    expect(zip.readUInt32LE(at)).toBe(0x02014b50);
    const method = zip.readUInt16LE(at + 10);
    const crc = zip.readUInt32LE(at + 16);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    const local = zip.readUInt32LE(at + 42);
    expect(zip.readUInt32LE(local)).toBe(0x04034b50);
    expect(method).toBe(0);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + size);
    expect(crc32(data), name).toBe(crc);
    entries.set(name, data);
    at += 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return entries;
}

const run = promisify(execFile);
/** `npm run teams:package` in a child, with MICROSOFT_APP_ID and PUBLIC_URL only as given. */
async function npmPackage(env: Record<string, string>, args: string[]) {
  const { MICROSOFT_APP_ID: _id, PUBLIC_URL: _url, ...rest } = process.env;
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'teams:package', '--', ...args], { cwd: ROOT, env: { ...rest, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('npm run teams:package', () => {
  it('writes a sideload zip with the manifest for this deployment and both icons', async () => {
    const out = tempPath('teams-app', '.zip');
    const result = await npmPackage({ MICROSOFT_APP_ID: APP_ID, PUBLIC_URL }, ['--out', out]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(out);
    const entries = readZip(readFileSync(out));
    expect([...entries.keys()]).toEqual(['manifest.json', 'color.png', 'outline.png']);
    const manifest = JSON.parse(entries.get('manifest.json')!.toString('utf8')) as Json;
    expect(validate(manifest)).toBe(true);
    expect(manifest).toEqual(renderTeamsManifest({ MICROSOFT_APP_ID: APP_ID, PUBLIC_URL }));
    expect(view(manifest).bots[0]!.botId).toBe(APP_ID);
    expect(view(manifest).validDomains).toEqual(['bot.acme.test']);
    expect(entries.get('color.png')).toEqual(colorIcon());
    expect(entries.get('outline.png')).toEqual(outlineIcon());
  });

  it('refuses without MICROSOFT_APP_ID, naming it, and writes nothing', async () => {
    const out = tempPath('teams-app', '.zip');
    const result = await npmPackage({ PUBLIC_URL }, ['--out', out]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('MICROSOFT_APP_ID is missing');
    expect(result.stderr).not.toContain('PUBLIC_URL');
    expect(existsSync(out)).toBe(false);
  });

  it.each([
    ['no PUBLIC_URL', { MICROSOFT_APP_ID: APP_ID }, /PUBLIC_URL is missing/],
    ['an http PUBLIC_URL', { MICROSOFT_APP_ID: APP_ID, PUBLIC_URL: 'http://bot.acme.test' }, /PUBLIC_URL must be an https URL/],
    ['an app id that is not a GUID', { MICROSOFT_APP_ID: 'my-bot', PUBLIC_URL }, /MICROSOFT_APP_ID must be a GUID/],
    ['the placeholder app id', { MICROSOFT_APP_ID: APP_ID_PLACEHOLDER, PUBLIC_URL }, /placeholder/],
    ['empty variables', { MICROSOFT_APP_ID: '', PUBLIC_URL: '' }, /MICROSOFT_APP_ID is missing[\s\S]*PUBLIC_URL is missing/],
  ])('refuses with %s', (_label, env, message) => {
    const out = tempPath('teams-app', '.zip');
    const result = packageTeamsApp(env, out);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems.join('\n')).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });
});
