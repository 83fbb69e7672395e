// Admin roles: which admin credential may call which admin route (docs/governance.md, "Admin roles").
// The admin token is role `admin`; an admin key (keys.ts) carries one of the three roles. The rule
// is one table, checked by the admin guard (http/auth.ts) on every admin route before its body is
// read: a route not listed gets the default of its method (GET and HEAD → read, anything else →
// admin), so a route added later is never callable by a weaker role than `admin` by accident.

export const ADMIN_ROLES = ['read', 'operate', 'admin'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

const rank: Record<AdminRole, number> = { read: 0, operate: 1, admin: 2 };

/** Does `role` include `needed`? (read ⊂ operate ⊂ admin) */
export const roleAllows = (role: AdminRole, needed: AdminRole): boolean => rank[role] >= rank[needed];

/**
 * Admin routes whose role is not the default of their method, keyed `METHOD /path` with the
 * path as the route is registered (`:param`s included). `operate` is the day-to-day work that
 * keeps or takes away access, never gives any: revoking, refreshing, re-connecting, offboarding,
 * rotating. What creates a credential, widens access or changes where data goes stays `admin`.
 */
export const adminRouteRoles: Readonly<Record<string, AdminRole>> = {
  // Raised above the GET default: which admin credentials exist is for admins.
  'GET /v1/admin-keys': 'admin',
  'GET /v1/admin-keys/:id': 'admin',
  // Connections: revoke (at the IdP, verified), force a refresh, the owner's re-connect.
  'DELETE /v1/connections/:id': 'operate',
  'POST /v1/connections/:id/refresh': 'operate',
  'POST /v1/connect-sessions': 'operate',
  'POST /v1/connections/:id/reconnect-link': 'operate',
  'POST /v1/connections/:id/confirm-reconnect': 'operate',
  // Tags (end_user, organization, labels) are bookkeeping: they give no access.
  'PATCH /v1/connections/:id': 'operate',
  // Taking a cross-owner allowance back removes grants; giving one (POST) is admin.
  'DELETE /v1/connections/:id/shares/:owner': 'operate',
  // Agents: revoke (minting one, POST /v1/agents, is admin).
  'DELETE /v1/agents/:id': 'operate',
  // Governance (issue 11): offboarding and due rotations are incident and routine work.
  // (PATCH /v1/agents/:id stays admin: besides narrowing and suspending, it reactivates.)
  'POST /v1/owners/:owner/offboard': 'operate',
  'POST /v1/rotations/run': 'operate',
  // Webhooks: sending a delivery again to the webhook's own URL (creating one, or changing where data goes, is admin).
  'POST /v1/webhooks/:id/deliveries/:delivery/redeliver': 'operate',
};

/** The role an admin route needs: its entry in `adminRouteRoles`, else GET/HEAD → read, others → admin. */
export function requiredRole(method: string, url: string | undefined): AdminRole {
  const m = method.toUpperCase();
  const listed = url === undefined ? undefined : adminRouteRoles[`${m === 'HEAD' ? 'GET' : m} ${url}`];
  if (listed) return listed;
  return m === 'GET' || m === 'HEAD' ? 'read' : 'admin';
}

/** Who authenticated on an admin route. */
export type AdminPrincipal =
  /** The admin token (WARRANT_ADMIN_TOKEN or the stored one): role admin, audited as `admin`. */
  | { kind: 'token'; role: 'admin' }
  /** An admin key: audited as `admin_key:<id>` (the id is the lookup half, never the secret). */
  | { kind: 'key'; id: string; name: string; role: AdminRole };

export const ADMIN_TOKEN_PRINCIPAL: AdminPrincipal = { kind: 'token', role: 'admin' };

/** The audit `actor` of what a principal does: `admin` for the admin token, `admin_key:adk_…` for a key. */
export const actorOf = (p: AdminPrincipal): string => (p.kind === 'token' ? 'admin' : `admin_key:${p.id}`);
