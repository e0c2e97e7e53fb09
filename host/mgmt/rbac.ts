/**
 * Role-based access control for the management API, in the shape of Azure RBAC: roles are lists
 * of permitted actions (`resource/action`, with `resource/*` and `*` wildcards, minus optional
 * `notPermissions`); a role is assigned to a principal at a scope and is inherited by everything
 * below that scope; **explicit deny assignments override every allow**; and anything no
 * assignment allows is denied. (Kubernetes RBAC is allow-only: we need deny assignments so that
 * an owner can fence off, say, disk wipes on one partition without rewriting every role.)
 *
 * Scopes: `/` (the host), `/segments/<segment>`, `/partitions/<name>`. A partition's scope chain
 * is `/` → `/segments/<its segment>` (when it has a NIC) → `/partitions/<name>`: an assignment at
 * any of them applies to it. The module is pure: `decide` never does I/O, so every cell of the
 * permission × role × scope matrix can be tested exactly.
 */
import { InvalidArgumentError } from '../errors.ts';
import { quoted } from '../escape.ts';
import { NAME_PATTERN } from '../schema/patterns.ts';

/** Every permission the API checks. A role may name these, `resource/*` or `*`. */
export const PERMISSIONS = [
  'partitions/read',
  'partitions/write',
  'partitions/start',
  'partitions/console',
  'partitions/call',
  'disks/wipe',
  'metrics/read',
  'policy/read',
  'policy/write',
  'audit/read',
  'attestation/read',
  'tokens/read',
  'tokens/write',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export interface RoleDefinition {
  name: string;
  description?: string;
  /** Permissions or patterns (`partitions/*`, `*`) the role allows. */
  permissions: string[];
  /** Permissions or patterns taken out of `permissions` (Azure's NotActions). */
  notPermissions?: string[];
}

/** A role given to a principal at a scope. `principal` is `token:<name>`, `cert:<CN>` or `*` (everyone authenticated). */
export interface RoleAssignment {
  principal: string;
  role: string;
  scope: string;
}

/** Denies permissions to a principal at a scope and below, whatever any role allows. */
export interface DenyAssignment {
  /** Names the rule in audit records; default `deny-<index>`. */
  name?: string;
  principal: string;
  permissions: string[];
  scope: string;
}

export const BUILT_IN_ROLES: readonly RoleDefinition[] = [
  { name: 'Owner', description: 'Everything, including tokens and policy.', permissions: ['*'] },
  {
    name: 'Operator',
    description: 'Runs partitions: create, start, stop, console, call, wipe disks; reads policy, metrics and attestation.',
    permissions: ['partitions/*', 'disks/wipe', 'metrics/read', 'policy/read', 'attestation/read'],
  },
  {
    name: 'Auditor',
    description: 'Reads everything security-relevant (audit log, attestation, policy, tokens without secrets), changes nothing.',
    permissions: ['audit/read', 'attestation/read', 'policy/read', 'partitions/read', 'metrics/read', 'tokens/read'],
  },
  { name: 'Reader', description: 'Reads partitions, metrics and policy.', permissions: ['partitions/read', 'metrics/read', 'policy/read'] },
];

/** A partition's or a segment's name, unanchored (schema/patterns.ts). */
const NAME = NAME_PATTERN.slice(1, -1);
export const SCOPE_PATTERN = `^(/|/partitions/${NAME}|/segments/${NAME})$`;
const SCOPE = new RegExp(SCOPE_PATTERN);
const PERMISSION_PATTERN = /^(\*|[a-z]+\/(\*|[a-z]+))$/;

/** Throws ERR_INVALID_ARGUMENT unless `scope` is `/`, `/partitions/<name>` or `/segments/<name>`. */
export function checkScope(scope: string, where = 'scope'): string {
  if (typeof scope !== 'string' || !SCOPE.test(scope)) {
    throw new InvalidArgumentError(`${where} ${quoted(scope)} is not a scope: use /, /partitions/<name> or /segments/<name>`);
  }
  return scope;
}

function checkPattern(p: string, where: string): void {
  if (!PERMISSION_PATTERN.test(p)) throw new InvalidArgumentError(`${where}: ${quoted(p)} is not a permission (resource/action, resource/* or *)`);
  const [resource] = p.split('/');
  if (p !== '*' && !PERMISSIONS.some((q) => q.startsWith(`${resource}/`))) {
    throw new InvalidArgumentError(`${where}: no permission has the resource ${quoted(resource)} (known: ${[...new Set(PERMISSIONS.map((q) => q.split('/')[0]))].join(', ')})`);
  }
  if (!p.endsWith('/*') && p !== '*' && !(PERMISSIONS as readonly string[]).includes(p)) {
    throw new InvalidArgumentError(`${where}: unknown permission ${quoted(p)}`);
  }
}

function matches(pattern: string, permission: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('/*')) return permission.startsWith(pattern.slice(0, -1));
  return pattern === permission;
}

/**
 * Whether an assignment at `outer` reaches `inner`: `/` reaches every scope, a segment every
 * partition (any partition may join a segment later), a scope itself.
 */
function reaches(outer: string, inner: string): boolean {
  return outer === '/' || outer === inner || (outer.startsWith('/segments/') && inner.startsWith('/partitions/'));
}

/** The permissions a role allows, expanded. */
export function rolePermissions(role: RoleDefinition): Permission[] {
  return PERMISSIONS.filter((p) => role.permissions.some((q) => matches(q, p)) && !(role.notPermissions ?? []).some((q) => matches(q, p)));
}

/** What was decided, and by which rule: the audit record of an authorization. */
export interface Decision {
  allowed: boolean;
  permission: Permission;
  /** The target scope the permission was checked at. */
  scope: string;
  /** `deny:<name>@<scope>`, `allow:<principal>:<role>@<scope>` or `default-deny`. */
  rule: string;
}

/** The scopes whose assignments apply to `scope` (itself and its ancestors). `segment` is a partition's NIC segment. */
export function scopeChain(scope: string, segment: string | null = null): string[] {
  if (scope === '/') return ['/'];
  if (scope.startsWith('/partitions/') && segment !== null) return ['/', `/segments/${segment}`, scope];
  return ['/', scope];
}

/**
 * The access-control model: role definitions (built-in and custom), assignments and deny
 * assignments. Immutable once built; a changed configuration is a new Rbac.
 */
export class Rbac {
  private readonly roles = new Map<string, { def: RoleDefinition; allowed: ReadonlySet<Permission> }>();
  private readonly assignments: readonly RoleAssignment[];
  private readonly denies: readonly (DenyAssignment & { name: string })[];

  constructor(config: { roles?: RoleDefinition[]; assignments?: RoleAssignment[]; denyAssignments?: DenyAssignment[] } = {}) {
    for (const def of [...BUILT_IN_ROLES, ...(config.roles ?? [])]) {
      if (this.roles.has(def.name)) throw new InvalidArgumentError(`role ${quoted(def.name)} is defined twice (built-in roles: ${BUILT_IN_ROLES.map((r) => r.name).join(', ')})`);
      def.permissions.forEach((p, i) => checkPattern(p, `role ${def.name}.permissions[${i}]`));
      (def.notPermissions ?? []).forEach((p, i) => checkPattern(p, `role ${def.name}.notPermissions[${i}]`));
      this.roles.set(def.name, { def, allowed: new Set(rolePermissions(def)) });
    }
    this.assignments = (config.assignments ?? []).map((a, i) => {
      this.role(a.role, `assignments[${i}].role`);
      checkScope(a.scope, `assignments[${i}].scope`);
      return a;
    });
    this.denies = (config.denyAssignments ?? []).map((d, i) => {
      checkScope(d.scope, `denyAssignments[${i}].scope`);
      d.permissions.forEach((p, j) => checkPattern(p, `denyAssignments[${i}].permissions[${j}]`));
      return { ...d, name: d.name ?? `deny-${i}` };
    });
  }

  /** A role by name, or ERR_INVALID_ARGUMENT naming the known ones. */
  role(name: string, where = 'role'): RoleDefinition {
    const r = this.roles.get(name);
    if (r === undefined) throw new InvalidArgumentError(`${where}: unknown role ${quoted(name)} (known: ${[...this.roles.keys()].join(', ')})`);
    return r.def;
  }

  /**
   * Why `caller` may not mint a token named `name` carrying `role` at `scope`; empty when it may.
   * Nobody mints a token stronger than itself, counting all the token will hold: its principal,
   * `token:<name>`, holds `role` at `scope` *and* whatever rbac.json assigns to that name, and it
   * is bound by none of the deny assignments that name the caller alone. So, for each of those
   * grants, the caller must hold every permission of the role at the grant's scope, and no deny
   * naming the caller (and not the new principal) may cover one of them at or below that scope.
   */
  mintRefusals(caller: string, callerAssignments: readonly RoleAssignment[], name: string, role: RoleDefinition, scope: string): string[] {
    const principal = `token:${name}`;
    const grants = [{ role: role.name, scope, from: null as string | null }];
    for (const a of this.assignments) if (a.principal === principal) grants.push({ role: a.role, scope: a.scope, from: `rbac.json assigns ${principal} ${a.role} at ${a.scope}` });
    const reasons: string[] = [];
    for (const g of grants) {
      const permissions = [...(this.roles.get(g.role)?.allowed ?? [])];
      const missing = permissions.filter((p) => !this.decide(caller, callerAssignments, p, g.scope).allowed);
      if (missing.length > 0) reasons.push(g.from === null ? `it does not hold ${missing.join(', ')} there` : `${g.from}, and ${caller} does not hold ${missing.join(', ')} there`);
      for (const d of this.denies) {
        if (d.principal !== caller || !reaches(g.scope, d.scope)) continue;
        const escaped = permissions.filter((p) => d.permissions.some((q) => matches(q, p)) && !this.decide(principal, [], p, d.scope).rule.startsWith('deny:'));
        if (escaped.length > 0) reasons.push(`${caller} is denied ${escaped.join(', ')} at ${d.scope} (deny ${d.name}), which the token would hold${g.from === null ? '' : ` (${g.from})`}`);
      }
    }
    return reasons;
  }

  /**
   * What rbac.json says of `principal`: the assignments and the deny assignments that name it or
   * `*` (everyone authenticated), in the order `decide` reads them (a credential's own assignment,
   * e.g. a token's, comes after these).
   */
  appliesTo(principal: string): { assignments: RoleAssignment[]; denyAssignments: (DenyAssignment & { name: string })[] } {
    const names = (p: string) => p === principal || p === '*';
    return {
      assignments: this.assignments.filter((a) => names(a.principal)).map((a) => ({ principal: a.principal, role: a.role, scope: a.scope })),
      denyAssignments: this.denies.filter((d) => names(d.principal)).map((d) => ({ name: d.name, principal: d.principal, permissions: [...d.permissions], scope: d.scope })),
    };
  }

  roleNames(): string[] {
    return [...this.roles.keys()];
  }

  /**
   * Decides whether `principal` (with `extra` assignments, e.g. the one a token carries) holds
   * `permission` at `scope`. Order: a matching deny assignment denies; else the first matching
   * allow (config assignments, then the principal's own) allows; else default deny.
   */
  decide(principal: string, extra: readonly RoleAssignment[], permission: Permission, scope: string, segment: string | null = null): Decision {
    const chain = scopeChain(scope, segment);
    for (const d of this.denies) {
      if ((d.principal === principal || d.principal === '*') && chain.includes(d.scope) && d.permissions.some((p) => matches(p, permission))) {
        return { allowed: false, permission, scope, rule: `deny:${d.name}@${d.scope}` };
      }
    }
    for (const list of [this.assignments, extra]) {
      for (const a of list) {
        if ((a.principal !== principal && a.principal !== '*') || !chain.includes(a.scope)) continue;
        if (this.roles.get(a.role)?.allowed.has(permission)) {
          return { allowed: true, permission, scope, rule: `allow:${a.principal}:${a.role}@${a.scope}` };
        }
      }
    }
    return { allowed: false, permission, scope, rule: 'default-deny' };
  }
}
