/**
 * `projectx credentials rotate-key [--all]`: re-encrypts every secret at rest (each module's: src/module.ts
 * `secrets`) under the first key of `PROJECTX_ENCRYPTION_KEY`, in one transaction. A terminal shows which kind
 * of secret is being done; the result is a line for a person, JSON for a program.
 */
import { RotationAborted, rotateKey } from '../../connectors/sdk/rotate-key.ts';
import { CommandFailed, UsageError, parse } from '../args.ts';
import { count, startProgress } from '../progress.ts';
import { defineVerb } from '../verb.ts';

export const credentialsVerb = defineVerb({
  name: 'credentials',
  summary: 'Secrets at rest: re-encrypt them under a new key',
  commands: [
    {
      name: 'rotate-key',
      usage: 'credentials rotate-key [--all]',
      summary: 'Put the new key first in PROJECTX_ENCRYPTION_KEY (keep the old one after it), restart, run this, then drop the old key. --all re-encrypts secrets already under the first key too.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { all: { type: 'boolean' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        if (!ctx.keyring) throw new CommandFailed('no encryption key is loaded: set PROJECTX_ENCRYPTION_KEY (new key first, then the old ones)');
        const stores = ctx.modules.flatMap((module) => module.secrets ?? []);
        const progress = startProgress(io);
        try {
          const report = await rotateKey(ctx.db, ctx.keyring, stores, {
            actor: 'cli',
            all: values.all === true,
            onStore: (store, index, sofar) => {
              const done = Object.values(sofar.rotated).reduce((sum, n) => sum + n, 0);
              progress.update(`re-encrypting ${store.title} (${index + 1} of ${stores.length}): ${count(done)} re-encrypted, ${count(sofar.current)} already current`);
            },
          });
          progress.done();
          const total = Object.values(report.rotated).reduce((sum, n) => sum + n, 0);
          if (io.terminal) io.out(`re-encrypted ${total} secret(s) under key ${report.keyId}${total > 0 ? ` (${Object.entries(report.rotated).map(([kind, n]) => `${kind} ${n}`).join(', ')})` : ''}; ${report.current} already under it`);
          else io.out(JSON.stringify({ keyId: report.keyId, reencrypted: total, byKind: report.rotated, alreadyCurrent: report.current }));
          return 0;
        } catch (error) {
          progress.done();
          if (error instanceof RotationAborted) throw new CommandFailed(error.message);
          throw error;
        }
      },
    },
  ],
});
