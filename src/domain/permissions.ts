/**
 * What each role may do, in one table. Authorization of chat commands and CLI verbs goes through `can`;
 * finer rules (the approval policy of a task, separation of duties) are checked by the domain on top.
 */
import type { Role } from '../db/schema.ts';
import type { User } from './users.ts';

export type Permission =
  | 'help'
  | 'link'
  | 'tasks.read_own'
  | 'tasks.read_all'
  | 'tasks.decide'
  | 'tasks.manage'
  | 'incidents.read'
  | 'incidents.acknowledge'
  | 'evidence.upload'
  | 'status.read'
  | 'admin';

const VIEWER: Permission[] = ['help', 'link', 'tasks.read_own', 'incidents.read', 'status.read'];
const CONTRIBUTOR: Permission[] = [...VIEWER, 'evidence.upload'];
const RESPONDER: Permission[] = [...CONTRIBUTOR, 'incidents.acknowledge'];
const APPROVER: Permission[] = [...CONTRIBUTOR, 'tasks.read_all', 'tasks.decide'];

export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  viewer: VIEWER,
  contributor: CONTRIBUTOR,
  responder: RESPONDER,
  approver: APPROVER,
  admin: [...new Set<Permission>([...RESPONDER, ...APPROVER, 'tasks.manage', 'admin'])],
};

/** Unlinked chat users may read help and ask to be linked, nothing else. */
export const UNLINKED_PERMISSIONS: readonly Permission[] = ['help', 'link'];

export function permissionsOf(user: User | undefined): Set<Permission> {
  if (!user || !user.active) return new Set(UNLINKED_PERMISSIONS);
  return new Set(user.roles.flatMap((role) => ROLE_PERMISSIONS[role]));
}

export function can(user: User | undefined, permission: Permission): boolean {
  return permissionsOf(user).has(permission);
}
