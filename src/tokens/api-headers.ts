// A provider's `api_headers` (`Notion-Version: 2022-06-28`, `Xero-tenant-id: {tenant_id}`), filled
// from the connection's params, for every call Warrant makes to its API. A header whose param is
// missing or unfit is refused before anything is sent: an upstream never sees a literal
// `{tenant_id}`, and a value can never split the header block.

import { WarrantError, isWarrantError } from '../errors/index.ts';
import { valueProblem, type Provider } from '../providers/index.ts';

const PLACEHOLDER = /\{([a-z][a-z0-9_]*)\}/g;
// What Node itself accepts in a field value (RFC 9110 §5.5: field-vchar, SP, HTAB, obs-text).
// eslint-disable-next-line no-control-regex
const NOT_FIELD_TEXT = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * The provider's API headers for a connection with `params`: lower-cased name → value. Throws
 * `conflict` naming the `param` (and the `header`) when one is missing or is not a fit value (its
 * declared type, no control characters): the connection must be connected again (or imported
 * again with the param).
 */
export function apiHeaderValues(
  provider: Pick<Provider, 'id' | 'api_headers' | 'connection_params'>,
  params: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [header, template] of Object.entries(provider.api_headers ?? {})) {
    out[header.toLowerCase()] = template.replace(PLACEHOLDER, (_, name: string) => {
      const value = Object.hasOwn(params, name) ? params[name] : undefined;
      if (value === undefined || value === '') {
        throw new WarrantError(
          'conflict',
          `${provider.id} needs the connection param ${name} for its ${header} header and this connection has none; connect it again, or import it again with params.${name}`,
          { param: name, header },
        );
      }
      const problem = valueProblem(provider.connection_params?.[name] ?? {}, value) ?? (NOT_FIELD_TEXT.test(value) ? 'holds characters a header value cannot' : undefined);
      if (problem) {
        throw new WarrantError('conflict', `the connection's param ${name} (for the ${header} header) ${problem}; connect it again, or import it again with a good params.${name}`, {
          param: name,
          header,
        });
      }
      return value;
    });
  }
  return out;
}

/** `apiHeaderValues`, with its refusal returned rather than thrown (kept with a connection, thrown once a call is allowed). */
export function apiHeadersOrProblem(...args: Parameters<typeof apiHeaderValues>): Record<string, string> | WarrantError {
  try {
    return apiHeaderValues(...args);
  } catch (err) {
    if (isWarrantError(err)) return err;
    throw err;
  }
}
