import { Ajv2020 } from 'ajv/dist/2020.js';

// The structure of an OpenAPI 3.1 document, as far as Warrant's document uses it, checked with
// Ajv (JSON Schema 2020-12), plus what a JSON Schema cannot say: every schema in it compiles as
// JSON Schema 2020-12, every $ref resolves, path parameters match their templates, operation ids
// are unique, tags and security schemes are declared. Not the official OAS 3.1 meta-schema (no
// package here ships it), but the rules of the specification a renderer or a client generator
// trips on.

const response = {
  type: 'object',
  required: ['description'],
  properties: { description: { type: 'string', minLength: 1 }, headers: { type: 'object' }, content: { $ref: '#/$defs/content' } },
  additionalProperties: false,
};

const operation = {
  type: 'object',
  required: ['responses'],
  properties: {
    tags: { type: 'array', items: { type: 'string' } },
    summary: { type: 'string' },
    description: { type: 'string' },
    operationId: { type: 'string' },
    parameters: { type: 'array', items: { $ref: '#/$defs/parameter' } },
    requestBody: { type: 'object', required: ['content'], properties: { description: { type: 'string' }, required: { type: 'boolean' }, content: { $ref: '#/$defs/content' } }, additionalProperties: false },
    responses: { type: 'object', minProperties: 1, propertyNames: { pattern: '^([1-5][0-9][0-9]|[1-5]XX|default)$' }, additionalProperties: response },
    security: { type: 'array', items: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } } },
    deprecated: { type: 'boolean' },
  },
  patternProperties: { '^x-': {} },
  additionalProperties: false,
};

const documentSchema = {
  type: 'object',
  required: ['openapi', 'info', 'paths'],
  properties: {
    openapi: { type: 'string', pattern: '^3\\.1\\.\\d+$' },
    info: { type: 'object', required: ['title', 'version'], properties: { title: { type: 'string' }, version: { type: 'string' }, description: { type: 'string' } } },
    tags: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, description: { type: 'string' } }, additionalProperties: false } },
    paths: {
      type: 'object',
      propertyNames: { pattern: '^/' },
      additionalProperties: {
        type: 'object',
        propertyNames: { enum: ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace', 'parameters', 'summary', 'description'] },
        additionalProperties: operation,
      },
    },
    components: { type: 'object', properties: { schemas: { type: 'object' }, securitySchemes: { type: 'object', additionalProperties: { $ref: '#/$defs/securityScheme' } } } },
    servers: { type: 'array' },
  },
  additionalProperties: false,
  $defs: {
    content: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        properties: { schema: { type: ['object', 'boolean'] }, example: {}, examples: { type: 'object', additionalProperties: { type: 'object', properties: { summary: { type: 'string' }, value: {} }, additionalProperties: false } } },
        additionalProperties: false,
      },
    },
    parameter: {
      type: 'object',
      required: ['name', 'in'],
      properties: {
        name: { type: 'string' },
        in: { enum: ['query', 'header', 'path', 'cookie'] },
        required: { type: 'boolean' },
        description: { type: 'string' },
        schema: { type: 'object' },
        example: {},
      },
      if: { properties: { in: { const: 'path' } } },
      then: { required: ['required'], properties: { required: { const: true } } },
      oneOf: [{ required: ['schema'] }, { required: ['content'] }],
    },
    securityScheme: {
      type: 'object',
      required: ['type'],
      properties: { type: { enum: ['apiKey', 'http', 'mutualTLS', 'oauth2', 'openIdConnect'] } },
      if: { properties: { type: { const: 'http' } } },
      then: { required: ['scheme'] },
      else: { if: { properties: { type: { const: 'oauth2' } } }, then: { required: ['flows'] } },
    },
  },
};

type Doc = { paths: Record<string, Record<string, any>>; components?: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, unknown> }; tags?: { name: string }[] };

/** Every problem found in the document; empty when it is a valid OpenAPI 3.1 document (as far as checked). */
export function openapiProblems(doc: Doc): string[] {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const problems: string[] = [];
  if (!ajv.validate(documentSchema, doc)) problems.push(...(ajv.errors ?? []).slice(0, 20).map((e) => `${e.instancePath} ${e.message}`));

  const resolve = (ref: string) => ref.startsWith('#/') && ref.slice(2).split('/').reduce<any>((node, part) => node?.[part.replaceAll('~1', '/').replaceAll('~0', '~')], doc) !== undefined;
  const walk = (node: unknown, at: string) => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${at}/${i}`));
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string' && !resolve(v)) problems.push(`${at}: $ref ${v} does not resolve`);
      else walk(v, `${at}/${k}`);
    }
  };
  walk(doc, '');

  // Each schema must be JSON Schema 2020-12 (component refs swapped for `true`: Ajv cannot see them).
  const refsOut = (s: unknown): unknown => JSON.parse(JSON.stringify(s, (k, v) => (v && typeof v === 'object' && typeof v.$ref === 'string' && v.$ref.startsWith('#/components/') ? {} : v)));
  const compiles = (schema: unknown, at: string) => {
    try {
      ajv.compile(refsOut(schema) as object);
    } catch (err) {
      problems.push(`${at}: not a JSON Schema: ${(err as Error).message}`);
    }
  };
  for (const [name, s] of Object.entries(doc.components?.schemas ?? {})) compiles(s, `#/components/schemas/${name}`);

  const operationIds = new Set<string>();
  const tags = new Set((doc.tags ?? []).map((t) => t.name));
  const schemes = new Set(Object.keys(doc.components?.securitySchemes ?? {}));
  for (const [path, item] of Object.entries(doc.paths)) {
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    for (const [method, op] of Object.entries(item)) {
      const at = `${method.toUpperCase()} ${path}`;
      const inPath = (op.parameters ?? []).filter((p: { in: string }) => p.in === 'path').map((p: { name: string }) => p.name);
      if ([...templated].sort().join() !== [...inPath].sort().join()) problems.push(`${at}: path parameters ${inPath} do not match the template`);
      if (op.operationId) {
        if (operationIds.has(op.operationId)) problems.push(`${at}: operationId ${op.operationId} is not unique`);
        operationIds.add(op.operationId);
      }
      for (const t of op.tags ?? []) if (!tags.has(t)) problems.push(`${at}: tag ${t} is not declared`);
      for (const req of op.security ?? []) for (const s of Object.keys(req)) if (!schemes.has(s)) problems.push(`${at}: security scheme ${s} is not declared`);
      for (const p of op.parameters ?? []) if (p.schema) compiles(p.schema, `${at} parameter ${p.name}`);
      const media = [...Object.values<any>(op.requestBody?.content ?? {}), ...Object.values<any>(op.responses).flatMap((r) => Object.values<any>(r.content ?? {}))];
      for (const m of media) if (m.schema !== undefined) compiles(m.schema, at);
    }
  }
  return problems;
}
