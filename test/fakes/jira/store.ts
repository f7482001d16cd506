/**
 * The fake Jira's memory: projects, users, issues and what hangs off them, boards and sprints.
 *
 * Issues live in a Map by id, a Map by key, and two arrays: `byUpdated`, sorted by (updated ms, id number), kept by
 * binary-search insertion and removal, and `byNum`, sorted by id number (new ids are always the largest, so it only
 * grows at the end). `scan` walks either one in any of the orders search asks for, from a keyset position, inside a
 * range of its primary key: a page costs O(log n + what it reads), never a sort. Deleted issues move to `deleted`
 * (webhook bodies for jira:issue_deleted still need them); hidden ones stay indexed and are skipped by readers.
 */
import { STATUSES, type StatusDef } from './fixtures.ts';
import type { ChangelogItem, IssueTypeName, JiraUser, PriorityName, RemoteLinkView } from './types.ts';

export interface Project {
  key: string;
  id: string;
  name: string;
}
export interface StoredComment {
  id: string;
  body: string;
  adf?: unknown;
  author: string;
  created: number;
  updated: number;
}
export interface StoredAttachment {
  id: string;
  filename: string;
  mimeType: string;
  content: Buffer;
  author: string;
  created: number;
}
export interface StoredIssue {
  id: string;
  num: number;
  key: string;
  project: Project;
  summary: string;
  issuetype: IssueTypeName;
  status: StatusDef;
  assignee: string | null;
  reporter: string | null;
  labels: string[];
  duedate: string | null;
  priority: PriorityName;
  description: string | null;
  descriptionAdf?: unknown;
  parentNum: number | null;
  created: number;
  updated: number;
  customFields: Record<string, unknown>;
  properties: Map<string, unknown>;
  remoteLinks: RemoteLinkView[];
  comments: StoredComment[];
  attachments: StoredAttachment[];
  transitions: { id: string; name: string; from: string; to: string; at: number; by: string }[];
  changelog: { id: string; author: string; created: number; items: ChangelogItem[] }[];
  writes: number;
  /** Times (fake clock, ms) of accepted HTTP writes within the last 30 s: the per-issue limiter's window. */
  writeTimes: number[];
  hidden: boolean;
}
export interface Board {
  id: number;
  name: string;
  type: 'scrum' | 'kanban';
  project: Project;
}
export interface Sprint {
  id: number;
  boardId: number;
  name: string;
  state: 'future' | 'active' | 'closed';
  startDate?: number;
  endDate?: number;
  completeDate?: number;
  goal?: string;
  /** Issue ids in rank order. */
  issues: string[];
}

/** Order of a scan: the index's primary key and the id tie-break, each ascending or descending. */
export interface ScanOrder {
  index: 'updated' | 'num';
  primaryDesc: boolean;
  numDesc: boolean;
}
/** Keyset position: the primary key and id number of the last issue served. */
export interface ScanAfter {
  primary: number;
  num: number;
}

const primaryOf = (index: ScanOrder['index'], issue: StoredIssue): number => (index === 'updated' ? issue.updated : issue.num);

export class JiraStore {
  readonly projects: Project[];
  readonly users = new Map<string, JiraUser>();
  readonly byId = new Map<string, StoredIssue>();
  readonly byKey = new Map<string, StoredIssue>();
  readonly deleted = new Map<string, StoredIssue>();
  readonly byUpdated: StoredIssue[] = [];
  readonly byNum: StoredIssue[] = [];
  readonly boards: Board[] = [];
  readonly sprints: Sprint[] = [];
  /** Custom field ids the site knows (from /field; any issue written with one adds it). */
  readonly customFields = new Map<string, string>([
    ['customfield_10016', 'Story point estimate'],
    ['customfield_10020', 'Sprint'],
  ]);
  readonly attachmentsById = new Map<string, { issue: StoredIssue; attachment: StoredAttachment }>();
  private nextNum = 10000;
  private readonly projectCounters = new Map<string, number>();
  private counter = 10000;

  constructor(projects: Project[]) {
    this.projects = projects;
  }

  /** A fresh numeric id for comments, attachments, changelogs, remote links. */
  nextId(): number {
    return ++this.counter;
  }
  project(keyOrId: string): Project | undefined {
    const upper = keyOrId.toUpperCase();
    return this.projects.find((p) => p.key === upper || p.id === keyOrId || p.name.toLowerCase() === keyOrId.toLowerCase());
  }
  user(accountIdOrName: string): JiraUser | undefined {
    return this.users.get(accountIdOrName) ?? [...this.users.values()].find((u) => u.name === accountIdOrName);
  }
  /** A live issue by id or key (case-insensitive), hidden ones included. */
  get(idOrKey: string): StoredIssue | undefined {
    return /^\d+$/.test(idOrKey) ? this.byId.get(idOrKey) : this.byKey.get(idOrKey.toUpperCase());
  }
  /** A live or deleted issue. */
  getAny(idOrKey: string): StoredIssue | undefined {
    return this.get(idOrKey) ?? [...this.deleted.values()].find((i) => i.id === idOrKey || i.key === idOrKey.toUpperCase());
  }
  /** What the API user can see: live and not hidden. */
  visible(idOrKey: string): StoredIssue | undefined {
    const issue = this.get(idOrKey);
    return issue && !issue.hidden ? issue : undefined;
  }
  issueByNum(num: number): StoredIssue | undefined {
    return this.byId.get(String(num));
  }

  /** Allocates id and key for a new issue of `project`. */
  allocate(project: Project): { id: string; num: number; key: string } {
    const num = this.nextNum++;
    const n = (this.projectCounters.get(project.key) ?? 0) + 1;
    this.projectCounters.set(project.key, n);
    return { id: String(num), num, key: `${project.key}-${n}` };
  }

  /** First index of `byUpdated` whose (updated, num) is >= (u, n), or > when `strict`. */
  private bound(u: number, n: number, strict: boolean): number {
    const a = this.byUpdated;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = a[mid]!;
      const c = m.updated !== u ? m.updated - u : m.num - n;
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  private numBound(n: number, strict: boolean): number {
    const a = this.byNum;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = a[mid]!.num - n;
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  add(issue: StoredIssue): void {
    this.index(issue);
    this.byUpdated.splice(this.bound(issue.updated, issue.num, false), 0, issue);
    this.byNum.push(issue);
  }
  /** Bulk add: one sort at the end. */
  addMany(issues: StoredIssue[]): void {
    for (const issue of issues) {
      this.index(issue);
      this.byUpdated.push(issue);
      this.byNum.push(issue);
    }
    this.byUpdated.sort((a, b) => a.updated - b.updated || a.num - b.num);
  }
  private index(issue: StoredIssue): void {
    this.byId.set(issue.id, issue);
    this.byKey.set(issue.key, issue);
  }
  /** Applies `change` (which may move `updated`), keeping `byUpdated` in order. */
  change(issue: StoredIssue, change: (i: StoredIssue) => void): void {
    const at = this.bound(issue.updated, issue.num, false);
    if (this.byUpdated[at] === issue) this.byUpdated.splice(at, 1);
    change(issue);
    this.byUpdated.splice(this.bound(issue.updated, issue.num, false), 0, issue);
  }
  remove(issue: StoredIssue): void {
    const at = this.bound(issue.updated, issue.num, false);
    if (this.byUpdated[at] === issue) this.byUpdated.splice(at, 1);
    const n = this.numBound(issue.num, false);
    if (this.byNum[n] === issue) this.byNum.splice(n, 1);
    this.byId.delete(issue.id);
    this.byKey.delete(issue.key);
    for (const a of issue.attachments) this.attachmentsById.delete(a.id);
    this.deleted.set(issue.id, issue);
  }

  /**
   * Issues in `order`, whose primary key is in [lo, hi), starting after `after` (exclusive). When the primary and
   * the id go the same way this is a plain walk; when they differ (e.g. updated DESC, id ASC) each run of equal
   * primary keys is walked the other way.
   */
  *scan(order: ScanOrder, lo: number, hi: number, after?: ScanAfter): Generator<StoredIssue> {
    const { index, primaryDesc, numDesc } = order;
    const a = index === 'updated' ? this.byUpdated : this.byNum;
    const boundAt = (p: number, n: number, strict: boolean): number => (index === 'updated' ? this.bound(p, n, strict) : this.numBound(p, strict));
    const min = -Infinity;
    const max = Infinity;
    // [from, to): the slice of `a` inside the primary range.
    const from = boundAt(lo, min, false);
    const to = boundAt(hi, min, false);
    const sameWay = index === 'num' || primaryDesc === numDesc;
    if (sameWay) {
      if (!primaryDesc) {
        for (let i = after ? Math.max(from, boundAt(after.primary, after.num, true)) : from; i < to; i++) yield a[i]!;
      } else {
        for (let i = (after ? Math.min(to, boundAt(after.primary, after.num, false)) : to) - 1; i >= from; i--) yield a[i]!;
      }
      return;
    }
    // Runs of equal primary keys, walked against the primary direction.
    const run = function* (start: number, end: number, reverse: boolean): Generator<StoredIssue> {
      if (reverse) for (let i = end - 1; i >= start; i--) yield a[i]!;
      else for (let i = start; i < end; i++) yield a[i]!;
    };
    if (!primaryDesc) {
      // primary ASC, id DESC
      let i = from;
      if (after) {
        const runStart = Math.max(from, boundAt(after.primary, min, false));
        const runEnd = Math.min(to, boundAt(after.primary, max, false));
        yield* run(runStart, Math.min(runEnd, boundAt(after.primary, after.num, false)), true);
        i = Math.max(from, runEnd);
      }
      while (i < to) {
        const p = primaryOf(index, a[i]!);
        const end = Math.min(to, boundAt(p, max, false));
        yield* run(i, end, true);
        i = end;
      }
    } else {
      // primary DESC, id ASC
      let i = to;
      if (after) {
        const runStart = Math.max(from, boundAt(after.primary, min, false));
        const runEnd = Math.min(to, boundAt(after.primary, max, false));
        yield* run(Math.max(runStart, boundAt(after.primary, after.num, true)), runEnd, false);
        i = Math.min(to, runStart);
      }
      while (i > from) {
        const p = primaryOf(index, a[i - 1]!);
        const start = Math.max(from, boundAt(p, min, false));
        yield* run(start, i, false);
        i = start;
      }
    }
  }

  /** Every live issue (hidden included), in id order. */
  all(): readonly StoredIssue[] {
    return this.byNum;
  }
}

export const statusByName = (name: string): StatusDef | undefined =>
  STATUSES.find((s) => s.name.toLowerCase() === name.toLowerCase() || s.id === name);
