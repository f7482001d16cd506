/**
 * A real S3 server for the tests: Ceph RGW (Debian's radosgw) on a one-node cluster, a monitor and one
 * RAM-only (memstore) OSD, all on 127.0.0.1, with its config, logs, sockets and data in one directory.
 * S3 and STS answer on the same port; SSE-KMS uses RGW's built-in test key store. test/global-setup.ts starts
 * one per run (about 2 s); Debian's ceph-mon, ceph-osd and radosgw provide the binaries (see the README's first section).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { freePort } from '../support/fleet.ts';

export interface Rgw {
  /** `http://127.0.0.1:<port>` (S3 and STS on the same port) */
  endpoint: string;
  region: string;
  /** The test user's keys (user `projectx-test`, caps `roles=*`). */
  accessKeyId: string;
  secretAccessKey: string;
  /** A role the test user may assume, with an `s3:*` policy: `arn:aws:iam:::role/evidence-writer`. */
  roleArn: string;
  /** The cluster's ceph.conf, for `setBucketQuota` (radosgw-admin) from a test file. */
  adminConf: string;
  /** Sets a bucket quota in bytes on the bucket (see `setBucketQuota`); 0 or undefined clears it. */
  setBucketQuota(bucket: string, maxSizeBytes: number | undefined): Promise<void>;
  stop(): Promise<void>;
}

const READY_WITHIN_MS = 60_000;
const COMMAND_TIMEOUT_MS = 30_000;
const USER = 'projectx-test';
const ROLE = 'evidence-writer';
const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'monmaptool'] as const;
type Binaries = Record<(typeof BINARIES)[number], string> & { setpriv?: string };

/**
 * Starts the cluster in `dir` (made if missing), resolves once RGW answers S3 with the test user and role
 * made. Fails after 60 s with the end of the daemons' logs.
 */
export async function startRgw(dir: string): Promise<Rgw> {
  const bin = await findBinaries();
  const conf = path.join(dir, 'ceph.conf');
  await mkdir(path.join(dir, 'osd', 'ceph-0'), { recursive: true });
  for (const sub of ['run', 'log']) await mkdir(path.join(dir, sub), { recursive: true });
  const settings = { dir, fsid: randomUUID(), monPort: 0, rgwPort: 0, stsKey: randomBytes(8).toString('hex'), kmsKey: randomBytes(32).toString('base64') };
  const daemons: Daemon[] = [];
  let osd: Daemon | undefined;
  const stopAll = async () => {
    // RGW first: it waits for the OSD while it shuts down, and the OSD tells the monitor it is going.
    for (const daemon of [...daemons].reverse()) await daemon.stop();
  };
  const deadline = Date.now() + READY_WITHIN_MS;
  try {
    // The kernel's free port can be taken by someone else before a daemon binds it: try another, twice.
    for (let attempt = 1; ; attempt++) {
      settings.monPort = await freePort();
      await writeFile(conf, cephConf(settings));
      await rm(path.join(dir, 'mon'), { recursive: true, force: true });
      await mkdir(path.join(dir, 'mon'));
      const monmap = path.join(dir, 'monmap');
      await run(bin.monmaptool, ['--create', '--clobber', '--addv', 'a', `[v2:127.0.0.1:${settings.monPort}]`, '--fsid', settings.fsid, monmap]);
      await run(bin['ceph-mon'], ['-c', conf, '--mkfs', '-i', 'a', '--monmap', monmap]);
      const mon = spawnDaemon(bin, bin['ceph-mon'], ['-c', conf, '-i', 'a', '-f'], path.join(dir, 'log', 'mon.a.log'));
      daemons.push(mon);
      // `osd new` is the first thing the monitor answers; it also registers the OSD we make next.
      const osdUuid = randomUUID();
      const registered = await mon.whileRunning((signal) => run(bin.ceph, ['-c', conf, '--connect-timeout', '30', 'osd', 'new', osdUuid], signal));
      if (registered === 'done') {
        await run(bin['ceph-osd'], ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
        osd = spawnDaemon(bin, bin['ceph-osd'], ['-c', conf, '-i', '0', '-f'], path.join(dir, 'log', 'osd.0.log'));
        daemons.push(osd);
        break;
      }
      daemons.pop();
      if (attempt < 3 && /Address already in use/.test(await mon.output())) continue;
      throw new Error(`the Ceph monitor did not start: ${registered} (${conf}); the end of its log:\n${await mon.output()}`);
    }
    for (let attempt = 1; ; attempt++) {
      settings.rgwPort = await freePort();
      await writeFile(conf, cephConf(settings));
      const rgw = spawnDaemon(bin, bin.radosgw, ['-c', conf, '-n', 'client.rgw.a', '-f'], path.join(dir, 'log', 'client.rgw.a.log'));
      daemons.push(rgw);
      const started = await rgw.whileRunning((signal) => waitForS3(settings.rgwPort, deadline, signal));
      if (started === 'done') break;
      daemons.pop();
      if (attempt < 3 && /Address already in use/.test(await rgw.output())) continue;
      throw new Error(`radosgw ${started} (${conf}); the end of its log:\n${await rgw.output()}\nand of the OSD's:\n${await osd?.output()}`);
    }
    const keys = { accessKeyId: `PXT${randomBytes(16).toString('hex').toUpperCase().slice(0, 17)}`, secretAccessKey: randomBytes(30).toString('base64url') };
    await Promise.all([createUser(bin, conf, keys), createRole(bin, conf)]);
    return {
      endpoint: `http://127.0.0.1:${settings.rgwPort}`,
      region: 'us-east-1',
      ...keys,
      roleArn: `arn:aws:iam:::role/${ROLE}`,
      adminConf: conf,
      setBucketQuota: (bucket, maxSizeBytes) => setBucketQuota(conf, bucket, maxSizeBytes),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Rejects, saying how to install them, when a binary the cluster needs is missing (a few file checks). */
export async function assertRgwInstalled(): Promise<void> {
  await findBinaries();
}

/**
 * Sets (or with 0 or undefined, disables) the quota of one bucket, in bytes, with radosgw-admin on the cluster
 * of `adminConf`. RGW enforces it from the next PUT on (radosgw-admin tells it the bucket changed); it rounds
 * object sizes up to 4 KiB, and refuses a PUT that would go over with 403 QuotaExceeded.
 *
 * @example
 * await setBucketQuota(inject('s3').adminConf, 'evidence-quota', 8192); // a third 4 KiB PUT fails
 */
export async function setBucketQuota(adminConf: string, bucket: string, maxSizeBytes: number | undefined): Promise<void> {
  const bin = await findBinaries();
  const scope = ['-c', adminConf, '--quota-scope=bucket', `--bucket=${bucket}`];
  if (!maxSizeBytes) return void (await run(bin['radosgw-admin'], ['quota', 'disable', ...scope]));
  await run(bin['radosgw-admin'], ['quota', 'set', ...scope, `--max-size=${maxSizeBytes}`]);
  await run(bin['radosgw-admin'], ['quota', 'enable', ...scope]);
}

interface ConfSettings { dir: string; fsid: string; monPort: number; rgwPort: number; stsKey: string; kmsKey: string }

/** The cluster's config; its comments say why the less obvious lines are there. */
function cephConf({ dir, fsid, monPort, rgwPort, stsKey, kmsKey }: ConfSettings): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public addr = 127.0.0.1
; one port per daemon (no msgr1), and a port clash fails at once instead of after 3 tries 5 s apart
ms bind msgr1 = false
ms bind retry count = 1
auth cluster required = none
auth service required = none
auth client required = none
; without these two, clients fail the monitor's auth (-13) when auth is none
ms mon client mode = crc
ms client mode = crc
; every path here, none in /var/lib/ceph, /var/log/ceph or /var/run/ceph
run dir = ${dir}/run
log file = ${dir}/log/$name.log
crash dir = ${dir}/crash
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
osd journal = ${dir}/osd/$cluster-$id/journal
mon cluster log to file = false
; the monitor stops below 5% free disk by default: not our concern on a CI runner
mon data avail crit = 0
; each map change waits 1 s by default to batch changes, and RGW makes its pools one by one at its first start
paxos propose interval = 0.01
; RAM only; its size is what the OSD reports as capacity, not memory it takes
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
; small pools, and room for RGW's 7 of them on one OSD; no mgr runs to autoscale them
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
[client]
; a client waiting for the OSD to come up asks for a newer map on this tick (5 s by default)
objecter tick interval = 0.1
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
; 512 by default: 150 threads instead of 600, for containers with a pids limit
rgw thread pool size = 64
rgw s3 auth use sts = true
rgw sts key = ${stsKey}
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = testkey-1=${kmsKey}
; SSE over plain http
rgw crypt require ssl = false
; quota checks read the bucket's stats, not a copy cached for 10 minutes: this RGW updates its copy on its own
; writes, but not for changes made around it (radosgw-admin)
rgw bucket quota ttl = 0
; lifecycle workers: of no use here, and RGW's shutdown waited 5 to 10 s for their first pass
rgw enable lc threads = false
`;
}

async function createUser(bin: Binaries, conf: string, keys: { accessKeyId: string; secretAccessKey: string }): Promise<void> {
  await run(bin['radosgw-admin'], ['-c', conf, 'user', 'create', `--uid=${USER}`, `--display-name=${USER}`,
    `--access-key=${keys.accessKeyId}`, `--secret-key=${keys.secretAccessKey}`, '--caps=roles=*']);
}

async function createRole(bin: Binaries, conf: string): Promise<void> {
  const trust = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: [`arn:aws:iam:::user/${USER}`] }, Action: ['sts:AssumeRole'] }] };
  const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:*'], Resource: 'arn:aws:s3:::*' }] };
  await run(bin['radosgw-admin'], ['-c', conf, 'role', 'create', `--role-name=${ROLE}`, '--path=/', `--assume-role-policy-doc=${JSON.stringify(trust)}`]);
  await run(bin['radosgw-admin'], ['-c', conf, 'role-policy', 'put', `--role-name=${ROLE}`, '--policy-name=s3-all', `--policy-doc=${JSON.stringify(policy)}`]);
}

async function findBinaries(): Promise<Binaries> {
  const dirs = ['/usr/bin', '/usr/sbin', ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  const found: Partial<Binaries> = {};
  for (const name of BINARIES) {
    for (const candidate of dirs.map((dir) => path.join(dir, name))) {
      if (await access(candidate, constants.X_OK).then(() => true, () => false)) {
        found[name] = candidate;
        break;
      }
    }
  }
  // Optional (util-linux, on every Debian): makes the daemons die with this process, teardown or not.
  if (await access('/usr/bin/setpriv', constants.X_OK).then(() => true, () => false)) found.setpriv = '/usr/bin/setpriv';
  const missing = BINARIES.filter((name) => !found[name]);
  if (missing.length) {
    throw new Error(`Ceph RGW is not installed (the tests use a real S3 server; missing ${missing.join(', ')}): install Debian's ceph-mon, ceph-osd and radosgw (as in .ci/run: \`sudo apt-get install -y --no-install-recommends clamav clamav-daemon ceph-mon ceph-osd radosgw\`)`);
  }
  return found as Binaries;
}

/** Runs a Ceph tool to its end; rejects with the command (keys left out) and the end of its output. */
function run(binary: string, args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: COMMAND_TIMEOUT_MS, ...(signal ? { signal } : {}) }, (error, stdout, stderr) => {
      if (!error) return resolve();
      const command = [path.basename(binary), ...args.map((arg) => arg.replace(/^(--(access|secret)-key=).*/, '$1…'))].join(' ');
      const how = error.killed ? 'timed out or was stopped' : `exit ${String(error.code)}`;
      reject(new Error(`${command} failed (${how}): ${`${stderr}${stdout}`.trim().split('\n').slice(-10).join('\n')}`));
    });
  });
}

interface Daemon {
  /** Runs `work` while the daemon runs: 'done', or how the daemon ended first (work is then aborted). */
  whileRunning(work: (signal: AbortSignal) => Promise<void>): Promise<string>;
  /** The end of its log and stderr. */
  output(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a daemon in the foreground; with setpriv, the kernel kills it when this process ends. */
function spawnDaemon(bin: Binaries, binary: string, args: string[], logFile: string): Daemon {
  const [command, argv] = bin.setpriv ? [bin.setpriv, ['--pdeathsig', 'KILL', binary, ...args]] : [binary, args];
  const child = spawn(command, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-4000)));
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`exited (${signal ?? code})`));
    child.once('error', (error) => resolve(`could not be started (${error.message})`));
  });
  return {
    async whileRunning(work) {
      const abort = new AbortController();
      const outcome = await Promise.race([work(abort.signal).then(() => 'done', (error: unknown) => (error as Error).message), exited]);
      abort.abort();
      if (outcome !== 'done') await stopChild(child);
      return outcome;
    },
    async output() {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      return `${log.split('\n').filter((line) => line.trim()).slice(-25).join('\n')}\n${stderr}`.trim();
    },
    stop: () => stopChild(child),
  };
}

/** Polls until RGW answers an anonymous ListBuckets (not just anything on the port), or the deadline passes. */
async function waitForS3(port: number, deadline: number, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    if (await listBuckets(port)) return;
    if (Date.now() > deadline) throw new Error(`did not answer S3 within ${READY_WITHIN_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function listBuckets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (text: string) => (body += text));
      response.on('end', () => resolve(body.includes('ListAllMyBucketsResult')));
      response.on('error', () => resolve(false));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
