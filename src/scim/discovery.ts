import { LIST_SCHEMA, MAX_USER_NAME, USER_SCHEMA } from './resource.ts';

// What the service provider supports, described the SCIM way (RFC 7643 §5–§7, RFC 7644 §4).

/** Largest page `GET /Users` answers (`count` above it is lowered to it). */
export const MAX_RESULTS = 200;

const SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
const RT_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

const meta = (base: string, resourceType: string, path: string) => ({ resourceType, location: `${base}${path}` });

export function serviceProviderConfig(base: string) {
  return {
    schemas: [SPC_SCHEMA],
    documentationUri: 'https://warrant.dev/docs/governance#scim',
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'Bearer token',
        description: 'Authorization: Bearer with the value of WARRANT_SCIM_TOKEN',
        primary: true,
      },
    ],
    meta: meta(base, 'ServiceProviderConfig', '/ServiceProviderConfig'),
  };
}

const userResourceType = (base: string) => ({
  schemas: [RT_SCHEMA],
  id: 'User',
  name: 'User',
  endpoint: '/Users',
  description: 'A Warrant owner: userName is the owner id',
  schema: USER_SCHEMA,
  schemaExtensions: [],
  meta: meta(base, 'ResourceType', '/ResourceTypes/User'),
});

export function resourceTypes(base: string) {
  return list([userResourceType(base)]);
}

export function resourceType(base: string, id: string) {
  return id === 'User' ? userResourceType(base) : undefined;
}

const attr = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  type: 'string',
  multiValued: false,
  required: false,
  caseExact: false,
  mutability: 'readWrite',
  returned: 'default',
  uniqueness: 'none',
  ...extra,
});

const userSchema = (base: string) => ({
  schemas: [SCHEMA_SCHEMA],
  id: USER_SCHEMA,
  name: 'User',
  description: 'A Warrant owner. Attributes not listed here are accepted and not kept.',
  attributes: [
    attr('userName', {
      description: `The owner id (at most ${MAX_USER_NAME} characters); immutable once created. Compared exactly.`,
      required: true,
      caseExact: true,
      mutability: 'immutable',
      uniqueness: 'server',
    }),
    attr('externalId', { caseExact: true, description: "The identity provider's id of the user" }),
    attr('active', { type: 'boolean', description: 'false offboards the owner (agents and upstream grants revoked); true reactivates it' }),
    attr('displayName'),
    attr('nickName'),
    attr('title'),
    attr('userType'),
    attr('preferredLanguage'),
    attr('locale'),
    attr('timezone'),
    attr('name', {
      type: 'complex',
      subAttributes: ['formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix'].map((n) => attr(n)),
    }),
    attr('emails', {
      type: 'complex',
      multiValued: true,
      subAttributes: [attr('value'), attr('type'), attr('display'), attr('primary', { type: 'boolean' })],
    }),
  ],
  meta: meta(base, 'Schema', `/Schemas/${USER_SCHEMA}`),
});

export function schemas(base: string) {
  return list([userSchema(base)]);
}

export function schema(base: string, id: string) {
  return id === USER_SCHEMA ? userSchema(base) : undefined;
}

function list<T>(resources: T[]) {
  return { schemas: [LIST_SCHEMA], totalResults: resources.length, startIndex: 1, itemsPerPage: resources.length, Resources: resources };
}
