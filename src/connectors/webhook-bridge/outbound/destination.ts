/**
 * Where outbound webhooks may go: the SSRF guard. A subscriber names a URL; we resolve its host ourselves, and
 * every address it resolves to must be public unicast (ipaddr.js's `unicast` range: not loopback, private,
 * link-local, unique-local, CGNAT, multicast, unspecified, reserved, NAT64/6to4/Teredo, …) or lie inside
 * `OUTBOUND_WEBHOOK_ALLOWED_NETWORKS`.
 *
 * The check runs twice: before the request (a clear refusal, nothing sent) and inside the connection, as the
 * Agent's `lookup`, so the address connected to is the address checked. A name that answers a public address
 * to the first lookup and 127.0.0.1 to the second (DNS rebinding) still cannot reach the inside. Redirects are
 * never followed (undici's `request` does not), so a public endpoint cannot bounce us inwards either.
 */
import type { LookupAddress, LookupOptions } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { type LookupFunction, isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent, type Dispatcher } from 'undici';
import { type Result, ok, refuse } from '../../../domain/result.ts';

/** Resolves a host name to every address it has (the system resolver by default; tests inject their own). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/**
 * A resolver that gives up after `ms` (the lookup itself cannot be cancelled, but the delivery stops waiting
 * for it): a slow DNS server must not hold an attempt past its timeout. Fails with code ETIMEOUT, which a
 * delivery treats like any unresolvable name (tried again later).
 */
export function resolveWithin(resolve: Resolver, ms: number): Resolver {
  return (hostname) => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`resolving ${hostname} took longer than ${ms} ms`), { code: 'ETIMEOUT' })), ms);
    });
    return Promise.race([resolve(hostname), deadline]).finally(() => clearTimeout(timer));
  };
}

export const RESOLVE_TIMEOUT_MS = 5_000;
export const systemResolver: Resolver = resolveWithin((hostname) => lookup(hostname, { all: true }), RESOLVE_TIMEOUT_MS);

type Network = [ipaddr.IPv4 | ipaddr.IPv6, number];

export interface DestinationPolicy {
  /** Parsed `OUTBOUND_WEBHOOK_ALLOWED_NETWORKS`. */
  allowed: readonly Network[];
  resolve: Resolver;
}

/** A destination the policy forbids; `code` survives undici's error wrapping so the caller can tell it apart. */
export class DestinationRefusedError extends Error {
  readonly code = 'destination_refused';
}

/** @param networks normalized CIDRs (config.ts has validated them) */
export function destinationPolicy(networks: readonly string[], resolve: Resolver = systemResolver): DestinationPolicy {
  return { allowed: networks.map((network) => ipaddr.parseCIDR(network)), resolve };
}

/**
 * The ipaddr.js range of an address (`unicast` for a public one), with IPv4-mapped IPv6 (`::ffff:127.0.0.1`)
 * judged as the IPv4 address it carries. Anything unparseable is `invalid`.
 */
export function classifyAddress(address: string): string {
  try {
    return ipaddr.process(address).range();
  } catch {
    return 'invalid';
  }
}

/** Undefined when the address may be reached; else the range that forbids it (`loopback`, `private`, …). */
export function forbiddenRange(address: string, policy: Pick<DestinationPolicy, 'allowed'>): string | undefined {
  const range = classifyAddress(address);
  if (range === 'invalid') return range;
  const parsed = ipaddr.process(address);
  if (policy.allowed.some(([network, bits]) => network.kind() === parsed.kind() && parsed.match(network, bits))) return undefined;
  // ipaddr.js calls IPv4-compatible IPv6 (`::7f00:1`, i.e. ::127.0.0.1) and other odd forms "unicast": for
  // IPv6, only global unicast (2000::/3) is public.
  if (range === 'unicast' && parsed.kind() === 'ipv6' && !parsed.match(GLOBAL_UNICAST_V6)) return 'reserved';
  return range === 'unicast' ? undefined : range;
}

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');

/** Why a destination is refused, in words for an operator (stored as the delivery's last error). */
function refusalMessage(host: string, address: string, range: string): string {
  const what = host === address ? address : `${host} resolves to ${address}, which`;
  return `${what} is not a public address (${range}); webhooks are not sent there unless OUTBOUND_WEBHOOK_ALLOWED_NETWORKS allows it`;
}

/** The first forbidden address among `addresses`, as a refusal message. */
function firstRefusal(host: string, addresses: readonly string[], policy: Pick<DestinationPolicy, 'allowed'>): string | undefined {
  for (const address of addresses) {
    const range = forbiddenRange(address, policy);
    if (range) return refusalMessage(host, address, range);
  }
  return undefined;
}

export interface CheckedDestination {
  addresses: string[];
}

/**
 * Resolves the URL's host and checks every address (one bad address refuses the whole name: the connection
 * could pick any of them). `destination_refused` is final; `destination_unresolvable` may pass later.
 */
export async function checkDestination(url: URL, policy: DestinationPolicy): Promise<Result<CheckedDestination>> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: string[];
  if (isIP(host) !== 0) {
    addresses = [host];
  } else {
    try {
      addresses = (await policy.resolve(host)).map((entry) => entry.address);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return refuse('destination_unresolvable', `${host} did not resolve${typeof code === 'string' ? ` (${code})` : ''}`);
    }
    if (addresses.length === 0) return refuse('destination_unresolvable', `${host} has no address`);
  }
  const refusal = firstRefusal(host, addresses, policy);
  return refusal ? refuse('destination_refused', refusal) : ok({ addresses });
}

/**
 * A `lookup` for net/tls.connect that resolves through the policy's resolver and refuses the connection when
 * any address is forbidden. Honours both shapes Node asks for (`all: true` with autoSelectFamily, else one).
 */
export function guardedLookup(policy: DestinationPolicy): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
    policy.resolve(hostname).then(
      (resolved) => {
        const addresses = family === 0 ? resolved : resolved.filter((entry) => entry.family === family);
        const refusal = firstRefusal(hostname, addresses.map((entry) => entry.address), policy);
        if (refusal) return callback(new DestinationRefusedError(refusal), '', 0);
        const first = addresses[0];
        if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
        return options.all ? callback(null, addresses) : callback(null, first.address, first.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };
}

/** What deliveries go through: the policy, an Agent that enforces it at connect time, and the timeout. */
export interface OutboundTransport {
  policy: DestinationPolicy;
  dispatcher: Dispatcher;
  /** Whole-attempt limit: connect, send, and the response headers and body. */
  timeoutMs: number;
  close(): Promise<void>;
}

export const DEFAULT_DELIVERY_TIMEOUT_MS = 15_000;

export function createOutboundTransport(options: { allowedNetworks: readonly string[]; resolve?: Resolver; timeoutMs?: number }): OutboundTransport {
  const policy = destinationPolicy(options.allowedNetworks, options.resolve);
  const timeoutMs = options.timeoutMs ?? DEFAULT_DELIVERY_TIMEOUT_MS;
  const agent = new Agent({
    connect: { lookup: guardedLookup(policy), timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    // Subscribers are many hosts with sparse traffic: keep idle sockets briefly, never a large pool per host.
    keepAliveTimeout: 4_000,
    connections: 8,
  });
  return { policy, dispatcher: agent, timeoutMs, close: () => agent.close() };
}
