/**
 * Users, their roles, and the chat identities linked to them. A Slack user (enterprise/team + user id), a
 * Teams user (tenant + AAD object id) or an email address maps to exactly one user.
 */
import { createHash, randomInt } from 'node:crypto';
import { type Selectable, sql } from 'kysely';
import type { Db } from '../db/database.ts';
import type { Role, Surface, UsersTable } from '../db/schema.ts';
import type { ChatIdentity } from './actor.ts';
import { type Result, ok, refuse } from './result.ts';

export const ROLES: readonly Role[] = ['admin', 'approver', 'responder', 'contributor', 'viewer'];

export interface User {
  id: string;
  email: string;
  displayName: string;
  roles: Role[];
  active: boolean;
}

export function toUser(row: Selectable<UsersTable>): User {
  return { id: row.id, email: row.email, displayName: row.display_name, roles: row.roles, active: row.active };
}

export async function createUser(db: Db, input: { email: string; displayName: string; roles: Role[] }): Promise<Result<User>> {
  const email = input.email.trim().toLowerCase();
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) return refuse('invalid_email', `"${input.email}" is not an email address`);
  const unknown = input.roles.filter((role) => !ROLES.includes(role));
  if (unknown.length > 0) return refuse('invalid_role', `unknown role ${unknown.join(', ')} (roles: ${ROLES.join(', ')})`);
  const row = await db
    .insertInto('users')
    .values({ email, display_name: input.displayName.trim() || email, roles: [...new Set(input.roles)] })
    .onConflict((oc) => oc.expression(sql`lower(email)`).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (!row) return refuse('user_exists', `a user with email ${email} already exists`);
  // Every user is reachable by the email they were created with.
  await db.insertInto('identity_links').values({ user_id: row.id, surface: 'email', tenant: '', external_id: email, verified_via: 'created' }).onConflict((oc) => oc.doNothing()).execute();
  return ok(toUser(row));
}

export async function findUserByEmail(db: Db, email: string): Promise<User | undefined> {
  const row = await db.selectFrom('users').selectAll().where((eb) => eb(eb.fn('lower', [eb.ref('email')]), '=', email.trim().toLowerCase())).executeTakeFirst();
  return row ? toUser(row) : undefined;
}

export async function findUserById(db: Db, id: string): Promise<User | undefined> {
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toUser(row) : undefined;
}

export async function findUserByIdentity(db: Db, identity: ChatIdentity): Promise<User | undefined> {
  const row = await db
    .selectFrom('identity_links')
    .innerJoin('users', 'users.id', 'identity_links.user_id')
    .selectAll('users')
    .where('identity_links.surface', '=', identity.surface)
    .where('identity_links.tenant', '=', identity.tenant)
    .where('identity_links.external_id', '=', identity.surface === 'email' ? identity.externalId.toLowerCase() : identity.externalId)
    .where('users.active', '=', true)
    .executeTakeFirst();
  return row ? toUser(row) : undefined;
}

export async function listUsers(db: Db): Promise<User[]> {
  return (await db.selectFrom('users').selectAll().orderBy('email').execute()).map(toUser);
}

export async function setRoles(db: Db, userId: string, roles: Role[]): Promise<void> {
  await db.updateTable('users').set({ roles: [...new Set(roles)] }).where('id', '=', userId).execute();
}

/** Links a chat identity to a user; an identity already linked to someone else is refused, not moved. */
export async function linkIdentity(db: Db, userId: string, identity: ChatIdentity, verifiedVia: string): Promise<Result<{ created: boolean }>> {
  const externalId = identity.surface === 'email' ? identity.externalId.toLowerCase() : identity.externalId;
  const inserted = await db
    .insertInto('identity_links')
    .values({ user_id: userId, surface: identity.surface, tenant: identity.tenant, external_id: externalId, verified_via: verifiedVia })
    .onConflict((oc) => oc.constraint('identity_links_surface_tenant_external_key').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) return ok({ created: true });
  const existing = await db
    .selectFrom('identity_links')
    .select('user_id')
    .where('surface', '=', identity.surface)
    .where('tenant', '=', identity.tenant)
    .where('external_id', '=', externalId)
    .executeTakeFirstOrThrow();
  return existing.user_id === userId ? ok({ created: false }) : refuse('identity_taken', 'that chat identity is already linked to another user');
}

/** The identities linked to a user on one surface, within one tenant when given. */
export async function identitiesOf(db: Db, userId: string, surface: Surface, tenant?: string): Promise<ChatIdentity[]> {
  let query = db.selectFrom('identity_links').select(['surface', 'tenant', 'external_id']).where('user_id', '=', userId).where('surface', '=', surface);
  if (tenant !== undefined) query = query.where('tenant', '=', tenant);
  return (await query.orderBy('created_at').execute()).map((row) => ({ surface: row.surface, tenant: row.tenant, externalId: row.external_id }));
}

const LINK_CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
const hashCode = (code: string) => createHash('sha256').update(code.toUpperCase()).digest('hex');

/** A one-time code (valid 15 minutes) that an admin confirms to link this chat identity to a user. */
export async function issueLinkCode(db: Db, identity: ChatIdentity, now: Date): Promise<string> {
  const code = Array.from({ length: 8 }, () => LINK_CODE_ALPHABET[randomInt(LINK_CODE_ALPHABET.length)]).join('');
  await db
    .insertInto('link_codes')
    .values({ code_hash: hashCode(code), surface: identity.surface, tenant: identity.tenant, external_id: identity.externalId, expires_at: new Date(now.getTime() + 15 * 60_000) })
    .execute();
  return code;
}

/** Consumes a link code: links its chat identity to the user. */
export async function redeemLinkCode(db: Db, code: string, userId: string, now: Date): Promise<Result<ChatIdentity>> {
  const row = await db.deleteFrom('link_codes').where('code_hash', '=', hashCode(code.trim())).returningAll().executeTakeFirst();
  if (!row || row.expires_at.getTime() < now.getTime()) return refuse('link_code_invalid', 'that link code is unknown or has expired; ask for a new one with `/projectx link`');
  const identity: ChatIdentity = { surface: row.surface, tenant: row.tenant, externalId: row.external_id };
  const linked = await linkIdentity(db, userId, identity, 'link_code');
  return linked.ok ? ok(identity) : linked;
}
