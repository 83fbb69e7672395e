// SCIM 2.0 (RFC 7643, RFC 7644) at /scim/v2: identity providers provision and offboard owners.
export { scimRoutes, tokenMatcher, SCIM_PREFIX, SCIM_CONTENT_TYPE, type ScimRoutesDeps } from './routes.ts';
export { createScimUsers, SCIM_ACTOR, type ScimUsers, type ScimUsersDeps } from './users.ts';
export { parseFilter, formatFilter, MAX_FILTER_LENGTH, type UserFilter, type FilterAttribute } from './filter.ts';
export { ScimError, SCIM_ERROR_SCHEMA, type ScimType, type ScimErrorBody } from './errors.ts';
export { USER_SCHEMA, PATCH_SCHEMA, LIST_SCHEMA, applyPatch, readPatch, readUser, type UserState } from './resource.ts';
