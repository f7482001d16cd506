/**
 * The server under test for bench/webhooks: the real service (`startService`, role `web`: the accept path; a
 * worker processing the deliveries would only compete for the same cores) with the `generic` partner, on the
 * bench database given in `BENCH_DATABASE_URL`.
 */
import { serveProjectx } from '../lib/server.ts';

await serveProjectx({ DATABASE_URL: process.env.BENCH_DATABASE_URL, GENERIC_WEBHOOK_SECRET: process.env.BENCH_WEBHOOK_SECRET });
