/**
 * Time in the API user's profile zone, as Jira writes and reads it.
 *
 * - Issue timestamps: `2021-01-17T12:34:00.000+0000`, the offset without a colon (the search fixture; notes A2),
 *   written in the user's zone (`2021-01-17T04:34:00.000-0800` for America/Los_Angeles).
 * - Sprint dates: `2015-04-11T15:22:00.000+10:00`, the offset with a colon (notes A2, from the agile docs).
 * - Quoted JQL dates `yyyy/MM/dd HH:mm`, `yyyy-MM-dd HH:mm`, `yyyy-MM-dd` are local times in that zone with minute
 *   (or day) precision (notes A2, Atlassian's JQL date formats page).
 * - X-RateLimit-Reset: ISO 8601 `yyyy-MM-ddTHH:mmZ` (rate-limit fixture), UTC.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();
const offsets = new Map<string, number>();
const QUARTER_HOUR = 15 * 60_000;

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** The zone's offset from UTC at `ms`, in minutes (cached per quarter hour: zones change offsets on those). */
export function offsetMinutes(zone: string, ms: number): number {
  if (zone === 'UTC') return 0;
  const bucket = `${zone} ${Math.floor(ms / QUARTER_HOUR)}`;
  const cached = offsets.get(bucket);
  if (cached !== undefined) return cached;
  const parts: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(new Date(ms))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const local = Date.UTC(parts.year ?? 1970, (parts.month ?? 1) - 1, parts.day ?? 1, parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0);
  const offset = Math.round((local - (ms - (ms % 1000 + 1000) % 1000)) / 60_000);
  if (offsets.size > 50_000) offsets.clear();
  offsets.set(bucket, offset);
  return offset;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function localIso(ms: number, zone: string): { text: string; offset: number } {
  const offset = offsetMinutes(zone, ms);
  const d = new Date(ms + offset * 60_000);
  const text = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
  return { text, offset };
}
const offsetText = (offset: number, colon: boolean): string => {
  const abs = Math.abs(offset);
  return `${offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}${colon ? ':' : ''}${pad(abs % 60)}`;
};

/** `2021-01-17T04:34:00.000-0800`. */
export function formatJiraTime(ms: number, zone: string): string {
  const { text, offset } = localIso(ms, zone);
  return `${text}${offsetText(offset, false)}`;
}
/** `2015-04-11T15:22:00.000+10:00`. */
export function formatSprintTime(ms: number, zone: string): string {
  const { text, offset } = localIso(ms, zone);
  return `${text}${offsetText(offset, true)}`;
}
/** `yyyy-MM-ddTHH:mmZ` (UTC, truncated to the minute). */
export function formatResetHeader(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16)}Z`;
}

/** The instant of a local wall-clock time in `zone` (a time in a DST gap lands an hour later, as Java does). */
export function zonedToUtc(zone: string, year: number, month: number, day: number, hour = 0, minute = 0): number {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  const first = wall - offsetMinutes(zone, wall) * 60_000;
  return wall - offsetMinutes(zone, first) * 60_000;
}

/** `YYYY-MM-DD` → that date is valid. */
export function isValidDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === text;
}
