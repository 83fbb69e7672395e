import type { OAuthClient, TokenSet } from '../oauth/index.ts';

// Whose grant this is: the account at the IdP a connection acts for. A re-connect must come back
// with the same one, or it is not a re-connect (connect.ts). Asked in order of trust and cost:
// the ID token in the token response, the userinfo endpoint, RFC 7662 introspection.

const USERINFO_MAX_BYTES = 64 * 1024;

export interface AccountSource {
  client: OAuthClient;
  tokens: TokenSet;
  timeoutMs: number;
}

/**
 * `sub` of the ID token the token endpoint sent with the grant (src/oauth keeps its claims, not
 * the token). It was received over TLS from the token endpoint Warrant called, so the signature
 * need not be checked (OIDC Core §3.1.3.7 step 6); the issuer still must be the provider's.
 */
function fromIdToken(client: OAuthClient, tokens: TokenSet): string | undefined {
  const claims = tokens.extra.id_token_claims as { sub?: unknown; iss?: unknown } | undefined;
  if (!claims || typeof claims.sub !== 'string' || !claims.sub) return undefined;
  const issuer = client.endpoints.issuer;
  if (issuer && claims.iss !== issuer) return undefined;
  return claims.sub;
}

/** OIDC Core §5.3: GET userinfo with the access token; its `sub`. */
async function fromUserinfo(client: OAuthClient, tokens: TokenSet, timeoutMs: number): Promise<string | undefined> {
  const url = client.endpoints.userinfo_url;
  if (!url) return undefined;
  try {
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${tokens.access_token}`, accept: 'application/json' },
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (res.status !== 200 || declared > USERINFO_MAX_BYTES) {
      await res.body?.cancel();
      return undefined;
    }
    const text = await res.text();
    if (text.length > USERINFO_MAX_BYTES) return undefined;
    const body = JSON.parse(text) as { sub?: unknown };
    return typeof body.sub === 'string' && body.sub ? body.sub : undefined;
  } catch {
    return undefined;
  }
}

async function fromIntrospection(client: OAuthClient, tokens: TokenSet): Promise<string | undefined> {
  if (!client.endpoints.introspection_url) return undefined;
  try {
    const info = await client.introspect(tokens.access_token, 'access_token');
    return info.active && info.sub ? info.sub : undefined;
  } catch {
    return undefined;
  }
}

/** The account the grant belongs to, or undefined when the provider tells nobody. */
export async function accountOf({ client, tokens, timeoutMs }: AccountSource): Promise<string | undefined> {
  return fromIdToken(client, tokens) ?? (await fromUserinfo(client, tokens, timeoutMs)) ?? (await fromIntrospection(client, tokens));
}
