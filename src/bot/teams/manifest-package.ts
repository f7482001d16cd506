/**
 * `npm run teams:package [-- --out <file.zip>]`: the Teams sideload package (manifest.json for this deployment,
 * color.png, outline.png) from MICROSOFT_APP_ID and PUBLIC_URL. Prints the zip's path; without either variable
 * it names what is missing and exits 1. `-- --refresh` instead rewrites the committed manifests/teams/color.png,
 * outline.png and the manifest's commandLists from the generators (the test fails until they match).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TEAMS_MANIFEST_DIR, TEAMS_MANIFEST_FILE, parseTeamsPackageEnv, readTeamsManifestTemplate, renderTeamsManifest, teamsCommandLists } from './manifest.ts';
import { colorIcon, outlineIcon } from './manifest-icons.ts';
import { storedZip } from './manifest-zip.ts';

export const DEFAULT_PACKAGE_PATH = fileURLToPath(new URL('../../../.data/teams/projectx-teams-app.zip', import.meta.url));

export type PackageResult = { ok: true; path: string; manifest: Record<string, unknown> } | { ok: false; problems: string[] };

/** Builds the package and writes it to `outPath`; nothing is written when the environment is incomplete. */
export function packageTeamsApp(env: Record<string, string | undefined>, outPath = DEFAULT_PACKAGE_PATH): PackageResult {
  const parsed = parseTeamsPackageEnv(env);
  if (!parsed.ok) return parsed;
  const manifest = renderTeamsManifest(parsed.env);
  const zip = storedZip([
    { name: 'manifest.json', data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
    { name: 'color.png', data: colorIcon() },
    { name: 'outline.png', data: outlineIcon() },
  ]);
  const path = resolve(outPath);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, zip);
  return { ok: true, path, manifest };
}

/** Rewrites the committed icons and the committed manifest's commandLists from the generators. */
export function refreshCommitted(): string[] {
  const manifest = readTeamsManifestTemplate() as { bots?: Record<string, unknown>[] };
  for (const bot of manifest.bots ?? []) bot.commandLists = teamsCommandLists();
  const written = [
    { file: new URL('color.png', TEAMS_MANIFEST_DIR), data: colorIcon() },
    { file: new URL('outline.png', TEAMS_MANIFEST_DIR), data: outlineIcon() },
    { file: TEAMS_MANIFEST_FILE, data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
  ];
  for (const { file, data } of written) writeFileSync(file, data);
  return written.map(({ file }) => fileURLToPath(file));
}

function main(argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string' }, refresh: { type: 'boolean' } } });
  if (values.refresh) {
    for (const path of refreshCommitted()) process.stdout.write(`wrote ${path}\n`);
    return 0;
  }
  const result = packageTeamsApp(process.env, values.out);
  if (!result.ok) {
    process.stderr.write(`teams:package: cannot build the Teams app package:\n${result.problems.map((problem) => `  - ${problem}\n`).join('')}`);
    return 1;
  }
  process.stdout.write(`Teams app package written to ${result.path}\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
