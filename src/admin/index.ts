// Admin credentials beyond the admin token: scoped admin keys and the role each admin route needs
// (docs/governance.md, "Admin roles").
export {
  ADMIN_ROLES,
  ADMIN_TOKEN_PRINCIPAL,
  actorOf,
  adminRouteRoles,
  requiredRole,
  roleAllows,
  type AdminPrincipal,
  type AdminRole,
} from './roles.ts';
export { ADMIN_KEY_PREFIX, createAdminKeys, type AdminKeys, type AdminKeyView, type AdminKeysDeps } from './keys.ts';
export { createStatus, statusDefaults, CONNECTION_STATUSES, AGENT_STATUSES, type Status, type StatusReport, type StatusDeps } from './status.ts';
