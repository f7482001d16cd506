/** `projectx users …`: ProjectX users, their roles, and the chat identities linked to them. Every change is audited. */
import type { Role, Surface } from '../../db/schema.ts';
import { ROLES, createUser, linkIdentity, listUsers, redeemLinkCode, setRoles } from '../../domain/users.ts';
import { UsageError, must, one, oneArgument, parse, strings } from '../args.ts';
import { audit } from '../audit.ts';
import { userByEmail } from '../context.ts';
import { printList } from '../output.ts';
import { defineVerb } from '../verb.ts';

const LINK_USAGE = 'users link <email> (--slack <team or enterprise id>:<user id> | --teams <tenant id>:<object id>)';

export const usersVerb = defineVerb({
  name: 'users',
  summary: 'ProjectX users, their roles and linked chat identities',
  commands: [
    {
      name: 'add',
      usage: 'users add <email> [--name "<name>"] [--role <role>]...',
      summary: `Roles: ${ROLES.join(', ')} (repeat --role, or give them comma-separated).`,
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { name: { type: 'string' }, role: { type: 'string', multiple: true } });
        const email = oneArgument(positionals, 'email address');
        const roles = strings(values.role).flatMap((role) => role.split(',')).map((role) => role.trim()) as Role[];
        const unknown = roles.filter((role) => !ROLES.includes(role));
        if (unknown.length > 0) throw new UsageError(`unknown role ${unknown.join(', ')} (roles: ${ROLES.join(', ')})`);
        const user = must(await createUser(ctx.db, { email, displayName: one(values.name) ?? email, roles }));
        await audit(ctx, 'user.create', 'user', user.email, { roles: user.roles });
        io.out(`added ${user.displayName} <${user.email}> (${user.roles.join(', ') || 'no roles'}) id ${user.id}`);
        return 0;
      },
    },
    {
      name: 'list',
      usage: 'users list',
      list: true,
      async run(ctx, args, io) {
        parse(args, {});
        printList(io, await listUsers(ctx.db), {
          line: (user) => `${user.email}\t${user.displayName}\t${user.roles.join(',') || '-'}${user.active ? '' : '\t(inactive)'}`,
          json: (user) => ({ id: user.id, email: user.email, name: user.displayName, roles: user.roles, active: user.active }),
          empty: 'no users (add one with: projectx users add <email> --role admin)',
        });
        return 0;
      },
    },
    {
      name: 'roles',
      usage: 'users roles <email> <role,role…>',
      summary: 'Sets the user\'s roles (an empty list "" removes them all).',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const [email, list] = positionals;
        if (!email || list === undefined || positionals.length > 2) throw new UsageError('users roles takes an email and a comma-separated list of roles');
        const user = await userByEmail(ctx, email, 'email');
        const roles = list.split(',').map((role) => role.trim()).filter(Boolean) as Role[];
        const unknown = roles.filter((role) => !ROLES.includes(role));
        if (unknown.length > 0) throw new UsageError(`unknown role ${unknown.join(', ')} (roles: ${ROLES.join(', ')})`);
        await setRoles(ctx.db, user.id, roles);
        await audit(ctx, 'user.roles', 'user', user.email, { from: user.roles, to: roles });
        io.out(`${user.email}: ${roles.join(', ') || 'no roles'}`);
        return 0;
      },
    },
    {
      name: 'link',
      usage: LINK_USAGE,
      summary: 'Links a chat account to the user by hand (chat users can also ask with /projectx link).',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { slack: { type: 'string' }, teams: { type: 'string' } });
        const surface: Surface | undefined = values.slack ? 'slack' : values.teams ? 'teams' : undefined;
        const spec = one(values.slack) ?? one(values.teams);
        const match = spec ? /^([^:\s]+):([^:\s]+)$/.exec(spec) : null;
        if (!surface || !match || (values.slack && values.teams)) throw new UsageError('give exactly one of --slack <team>:<user> or --teams <tenant>:<object id>');
        const user = await userByEmail(ctx, positionals[0], 'email');
        const identity = { surface, tenant: match[1]!, externalId: match[2]! };
        const linked = must(await linkIdentity(ctx.db, user.id, identity, 'operator'));
        await audit(ctx, 'identity.link', 'user', user.email, { surface, tenant: identity.tenant, externalId: identity.externalId });
        io.out(linked.created ? `linked ${surface} ${spec} to ${user.email}` : `${surface} ${spec} was already linked to ${user.email}`);
        return 0;
      },
    },
    {
      name: 'link-code',
      usage: 'users link-code <code> <email>',
      summary: 'Confirms the code a chat user got from /projectx link.',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const [code, email] = positionals;
        if (!code || !email || positionals.length > 2) throw new UsageError('users link-code takes the code and an email');
        const user = await userByEmail(ctx, email, 'email');
        const identity = must(await redeemLinkCode(ctx.db, code, user.id, ctx.domain.clock.now()));
        await audit(ctx, 'identity.link', 'user', user.email, { surface: identity.surface, tenant: identity.tenant, externalId: identity.externalId, via: 'link_code' });
        io.out(`linked ${identity.surface} ${identity.tenant}:${identity.externalId} to ${user.email}`);
        return 0;
      },
    },
  ],
});
