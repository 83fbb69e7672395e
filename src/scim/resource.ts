import { ScimError, invalidSyntax, invalidValue } from './errors.ts';

// The SCIM User resource (RFC 7643 §4.1) as Warrant keeps it: `userName` is the owner id,
// `active` is the owner's status, and a small profile (names, emails …) is kept so a client
// reads back what it wrote. Attributes outside that profile (phoneNumbers, addresses, the
// enterprise extension, roles, password …) are accepted and not kept: directories send them by
// default and must not fail for it. A password is never kept nor logged.

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';

/** The longest owner id Warrant takes (as POST /v1/agents). */
export const MAX_USER_NAME = 320;
const MAX_STRING = 1024;
const MAX_EMAILS = 20;
const MAX_OPERATIONS = 100;

/** Single-valued strings of the profile, by their lowercase name (attribute names are case-insensitive, RFC 7643 §2.1). */
const simpleAttributes = {
  displayname: 'displayName',
  nickname: 'nickName',
  title: 'title',
  usertype: 'userType',
  preferredlanguage: 'preferredLanguage',
  locale: 'locale',
  timezone: 'timezone',
} as const;
type SimpleAttribute = (typeof simpleAttributes)[keyof typeof simpleAttributes];

const nameParts = {
  formatted: 'formatted',
  familyname: 'familyName',
  givenname: 'givenName',
  middlename: 'middleName',
  honorificprefix: 'honorificPrefix',
  honorificsuffix: 'honorificSuffix',
} as const;
type NamePart = (typeof nameParts)[keyof typeof nameParts];

export interface Email {
  value: string;
  type?: string;
  primary?: boolean;
  display?: string;
}

export type UserProfile = Partial<Record<SimpleAttribute, string>> & { name?: Partial<Record<NamePart, string>>; emails?: Email[] };

/** What a client may write: the owner id, its IdP id, whether it is active, and its profile. */
export interface UserState {
  userName: string;
  externalId: string | null;
  active: boolean;
  profile: UserProfile;
}

export interface UserInput extends Omit<UserState, 'active'> {
  /** Absent: unchanged (PUT) or true (POST). */
  active?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A member by case-insensitive name. */
function member(obj: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function text(field: string, v: unknown, max = MAX_STRING): string {
  if (typeof v !== 'string') throw invalidValue(field, 'must be a string');
  if (v.length > max) throw invalidValue(field, `must be at most ${max} characters`);
  if (CONTROL.test(v)) throw invalidValue(field, 'must not contain control characters');
  return v;
}

/** Booleans as JSON, or as the strings Microsoft Entra sends in PATCH values ("True", "False"). */
export function booleanOf(field: string, v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  throw invalidValue(field, 'must be true or false');
}

export function userNameOf(field: string, v: unknown): string {
  const name = text(field, v, MAX_USER_NAME + 64).trim();
  if (!name) throw invalidValue(field, 'must not be empty');
  if (name.length > MAX_USER_NAME) throw invalidValue(field, `must be at most ${MAX_USER_NAME} characters`);
  return name;
}

const optionalText = (field: string, v: unknown) => (v === undefined || v === null ? undefined : text(field, v));

function nameOf(field: string, v: unknown): Partial<Record<NamePart, string>> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalidValue(field, 'must be an object');
  const out: Partial<Record<NamePart, string>> = {};
  for (const [k, part] of Object.entries(v)) {
    const key = nameParts[k.toLowerCase() as keyof typeof nameParts];
    const value = key ? optionalText(`${field}.${key}`, part) : undefined;
    if (key && value !== undefined) out[key] = value;
  }
  return Object.keys(out).length ? out : undefined;
}

function emailOf(field: string, v: unknown): Email {
  if (!isObject(v)) throw invalidValue(field, 'must be an object');
  const email: Email = { value: text(`${field}.value`, member(v, 'value'), MAX_USER_NAME) };
  const type = optionalText(`${field}.type`, member(v, 'type'));
  const display = optionalText(`${field}.display`, member(v, 'display'));
  const primary = member(v, 'primary');
  if (type !== undefined) email.type = type;
  if (display !== undefined) email.display = display;
  if (primary !== undefined && primary !== null) email.primary = booleanOf(`${field}.primary`, primary);
  return email;
}

function emailsOf(field: string, v: unknown): Email[] | undefined {
  if (v === undefined || v === null) return undefined;
  const list = Array.isArray(v) ? v : [v];
  if (list.length > MAX_EMAILS) throw invalidValue(field, `at most ${MAX_EMAILS} emails`);
  return list.map((e, i) => emailOf(`${field}[${i}]`, e));
}

function checkSchemas(body: Record<string, unknown>, expected: string): void {
  const schemas = member(body, 'schemas');
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === expected.toLowerCase())) {
    throw invalidSyntax('schemas', `must list ${expected}`);
  }
}

/** The profile members of a full User body (POST, PUT). */
function profileOf(body: Record<string, unknown>): UserProfile {
  const profile: UserProfile = {};
  for (const [lower, key] of Object.entries(simpleAttributes)) {
    const value = optionalText(key, member(body, lower));
    if (value !== undefined) profile[key] = value;
  }
  const name = nameOf('name', member(body, 'name'));
  if (name) profile.name = name;
  const emails = emailsOf('emails', member(body, 'emails'));
  if (emails?.length) profile.emails = emails;
  return profile;
}

/** A full User representation (POST create, PUT replace; RFC 7644 §3.3, §3.5.1). */
export function readUser(body: unknown): UserInput {
  if (!isObject(body)) throw invalidSyntax('body', 'must be a JSON object');
  checkSchemas(body, USER_SCHEMA);
  if (member(body, 'userName') === undefined) throw invalidValue('userName', 'is required');
  const active = member(body, 'active');
  return {
    userName: userNameOf('userName', member(body, 'userName')),
    externalId: optionalText('externalId', member(body, 'externalId')) ?? null,
    ...(active === undefined || active === null ? {} : { active: booleanOf('active', active) }),
    profile: profileOf(body),
  };
}

export interface PatchOperation {
  op: 'add' | 'replace' | 'remove';
  path?: string;
  value?: unknown;
}

/** A PatchOp message (RFC 7644 §3.5.2); `op` is case-insensitive (Entra sends `Replace`). */
export function readPatch(body: unknown): PatchOperation[] {
  if (!isObject(body)) throw invalidSyntax('body', 'must be a JSON object');
  checkSchemas(body, PATCH_SCHEMA);
  const ops = member(body, 'Operations');
  if (!Array.isArray(ops) || !ops.length) throw invalidSyntax('Operations', 'must be a non-empty list');
  if (ops.length > MAX_OPERATIONS) throw invalidValue('Operations', `at most ${MAX_OPERATIONS} operations`);
  return ops.map((raw, i) => {
    const field = `Operations[${i}]`;
    if (!isObject(raw)) throw invalidSyntax(field, 'must be an object');
    const op = member(raw, 'op');
    if (typeof op !== 'string' || !/^(add|replace|remove)$/i.test(op)) throw invalidSyntax(`${field}.op`, 'must be add, replace or remove');
    const path = member(raw, 'path');
    if (path !== undefined && (typeof path !== 'string' || !path.trim() || path.length > 512)) throw new ScimError(400, 'invalidPath', `${field}.path: must be an attribute path`);
    return { op: op.toLowerCase() as PatchOperation['op'], ...(typeof path === 'string' ? { path: path.trim() } : {}), value: member(raw, 'value') };
  });
}

const CORE_PREFIX = `${USER_SCHEMA}:`.toLowerCase();
const PATH = /^([A-Za-z][\w$-]*)(?:\[([^\]]+)\])?(?:\.([A-Za-z][\w$-]*))?$/;
const EMAIL_TYPE = /^\s*type\s+eq\s+("(?:[^"\\]|\\.)*")\s*$/i;

/**
 * Applies the operations in order to a copy of `state` (RFC 7644 §3.5.2: all or nothing: a failing
 * operation throws and nothing is kept).
 */
export function applyPatch(state: UserState, ops: PatchOperation[]): UserState {
  const next: UserState = structuredClone(state);
  ops.forEach((op, i) => {
    const field = `Operations[${i}]`;
    if (op.path === undefined) {
      if (op.op === 'remove') throw new ScimError(400, 'noTarget', `${field}.path: remove needs a path`);
      // Okta: {"op":"replace","value":{"active":false}}: each member is a path of its own.
      if (!isObject(op.value)) throw invalidValue(`${field}.value`, 'must be an object when there is no path');
      for (const [key, value] of Object.entries(op.value)) applyPath(next, op.op, key, value, `${field}.value.${key}`);
      return;
    }
    applyPath(next, op.op, op.path, op.value, field);
  });
  return next;
}

function applyPath(state: UserState, op: PatchOperation['op'], rawPath: string, value: unknown, field: string): void {
  let path = rawPath;
  if (path.toLowerCase().startsWith(CORE_PREFIX)) path = path.slice(CORE_PREFIX.length);
  else if (/^urn:/i.test(path)) return; // an extension's attribute (enterprise User …): not kept
  const m = PATH.exec(path);
  if (!m) throw new ScimError(400, 'invalidPath', `${field}.path: is not an attribute path Warrant understands`);
  const [, attr, filter, sub] = m as unknown as [string, string, string | undefined, string | undefined];
  const name = attr.toLowerCase();
  const remove = op === 'remove';
  if (filter !== undefined && name !== 'emails') return; // addresses[type eq "work"]…: not kept
  switch (name) {
    case 'active':
      if (remove) throw invalidValue(`${field}.path`, 'active cannot be removed');
      state.active = booleanOf(`${field}.value`, value);
      return;
    case 'username': {
      if (remove || userNameOf(`${field}.value`, value) !== state.userName) {
        throw new ScimError(400, 'mutability', `${field}: userName is the owner id and cannot change`);
      }
      return;
    }
    case 'id':
    case 'meta':
      throw new ScimError(400, 'mutability', `${field}: ${attr} is read-only`);
    case 'externalid':
      state.externalId = remove || value === null ? null : text(`${field}.value`, value);
      return;
    case 'name':
      return patchName(state.profile, remove, sub, value, field);
    case 'emails':
      return patchEmails(state.profile, op, filter, sub, value, field);
  }
  const simple = simpleAttributes[name as keyof typeof simpleAttributes];
  if (!simple) return; // not kept (phoneNumbers, addresses, roles, password …)
  if (remove || value === null) delete state.profile[simple];
  else state.profile[simple] = text(`${field}.value`, value);
}

function patchName(profile: UserProfile, remove: boolean, sub: string | undefined, value: unknown, field: string): void {
  if (sub === undefined) {
    if (remove) delete profile.name;
    else profile.name = { ...profile.name, ...nameOf(`${field}.value`, value) };
  } else {
    const part = nameParts[sub.toLowerCase() as keyof typeof nameParts];
    if (!part) return;
    const name = { ...profile.name };
    if (remove || value === null) delete name[part];
    else name[part] = text(`${field}.value`, value);
    profile.name = name;
  }
  if (profile.name && !Object.keys(profile.name).length) delete profile.name;
}

function patchEmails(profile: UserProfile, op: PatchOperation['op'], filter: string | undefined, sub: string | undefined, value: unknown, field: string): void {
  let emails = profile.emails ?? [];
  if (filter === undefined) {
    if (sub !== undefined) throw new ScimError(400, 'invalidPath', `${field}.path: emails needs a filter before .${sub}`);
    if (op === 'remove') emails = [];
    else if (op === 'add') emails = [...emails, ...(emailsOf(`${field}.value`, value) ?? [])];
    else emails = emailsOf(`${field}.value`, value) ?? [];
  } else {
    // Entra: emails[type eq "work"].value
    const m = EMAIL_TYPE.exec(filter);
    if (!m) throw new ScimError(400, 'invalidFilter', `${field}.path: only emails[type eq "…"] is supported`);
    const type = JSON.parse(m[1]!) as string;
    const others = emails.filter((e) => e.type !== type);
    const current = emails.find((e) => e.type === type);
    if (op === 'remove') emails = others;
    else if (sub === undefined) emails = [...others, { ...emailOf(`${field}.value`, isObject(value) ? { type, ...value } : value) }];
    else {
      const key = sub.toLowerCase();
      const updated: Email = { value: current?.value ?? '', type, ...(current?.primary !== undefined ? { primary: current.primary } : {}) };
      if (key === 'value') updated.value = text(`${field}.value`, value, MAX_USER_NAME);
      else if (key === 'primary') updated.primary = booleanOf(`${field}.value`, value);
      else if (key === 'display') updated.display = text(`${field}.value`, value);
      else return;
      if (!updated.value) throw invalidValue(`${field}.value`, `the ${type} email has no value`);
      emails = [...others, updated];
    }
  }
  if (emails.length > MAX_EMAILS) throw invalidValue(`${field}.value`, `at most ${MAX_EMAILS} emails`);
  if (emails.length) profile.emails = emails;
  else delete profile.emails;
}

/** Names of the attributes that differ between two states (for the audit: never their values). */
export function changedAttributes(before: UserState, after: UserState): string[] {
  const out: string[] = [];
  if (before.externalId !== after.externalId) out.push('externalId');
  if (before.active !== after.active) out.push('active');
  const keys = new Set([...Object.keys(before.profile), ...Object.keys(after.profile)]) as Set<keyof UserProfile>;
  for (const k of keys) if (JSON.stringify(before.profile[k]) !== JSON.stringify(after.profile[k])) out.push(k);
  return out.sort();
}

export interface UserRecord extends UserState {
  id: string;
  created: number;
  lastModified: number;
}

/** The wire representation; `location` is the resource's absolute URL (RFC 7644 §3.1). */
export function toScimUser(user: UserRecord, location: string): Record<string, unknown> {
  return {
    schemas: [USER_SCHEMA],
    id: user.id,
    ...(user.externalId !== null ? { externalId: user.externalId } : {}),
    userName: user.userName,
    active: user.active,
    ...user.profile,
    meta: {
      resourceType: 'User',
      created: new Date(user.created).toISOString(),
      lastModified: new Date(user.lastModified).toISOString(),
      location,
    },
  };
}
