/**
 * Evidence stores as a module: the back-ends evidence files can be kept in (`EVIDENCE_STORE`), and the
 * pipeline's jobs (quarantine retries, renewals). Built: `local` (content-addressed files under
 * `EVIDENCE_LOCAL_DIR`, default `<PROJECTX_DATA_DIR>/evidence`) and `s3` (s3.ts). SharePoint and Google Drive
 * are not built in this version (src/connectors/catalog.ts says so at start-up and in `/projectx status`).
 */
import path from 'node:path';
import { defineModule } from '../../module.ts';
import { evidenceQuarantineRetry, evidenceRenewals } from './jobs.ts';
import { LocalEvidenceStore } from './local.ts';
import { lazyStore } from './store.ts';

export const evidenceStoresModule = defineModule({
  id: 'evidence-stores',
  title: 'Evidence store',
  kind: 'store',
  configuredBy: [],
  jobs: [evidenceQuarantineRetry, evidenceRenewals],
  evidenceStores: [
    { kind: 'local', create: (config) => new LocalEvidenceStore(config.EVIDENCE_LOCAL_DIR ?? path.join(config.PROJECTX_DATA_DIR, 'evidence')) },
    { kind: 's3', create: (config) => lazyStore('s3', async () => (await import('./s3.ts')).s3StoreFromConfig(config)) },
  ],
});
