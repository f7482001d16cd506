/**
 * The server under test for bench/webhooks: the real service (`startService`, role `web`: the accept path; a
 * worker processing the deliveries would only compete for the same cores) with the `generic` partner, on the
 * bench database given in `BENCH_DATABASE_URL`.
 */
import { loadConfig, secretValues } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startService } from '../../src/main.ts';
import { serveBench } from '../lib/server.ts';

const env = {
  DATABASE_URL: process.env.BENCH_DATABASE_URL,
  HOST: '127.0.0.1',
  PORT: '0',
  GENERIC_WEBHOOK_SECRET: process.env.BENCH_WEBHOOK_SECRET,
  LOG_LEVEL: 'warn',
};
const loaded = loadConfig(env);
if (!loaded.ok) throw new Error(loaded.problems.join('; '));
const secrets = secretValues(env);
const logger = createLogger({ level: loaded.config.LOG_LEVEL, destination: process.stderr, secrets });
const service = await startService({ config: loaded.config, role: 'web', logger, secrets });
serveBench(service.http.port, () => service.stop());
