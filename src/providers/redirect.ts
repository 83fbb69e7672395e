import type { Provider } from './schema.ts';

// Where a provider's IdP sends the browser back. DESIGN.md's callback is WARRANT_PUBLIC_URL +
// `/oauth/callback`, and that stays the default: it is the URI every deployment has registered at
// its IdPs. With WARRANT_REDIRECT_PER_PROVIDER each provider gets its own path under it, so the
// callback knows which authorization server a response was meant to come from, whatever the
// response says (RFC 9700 §4.4.2.2: a distinct redirect URI per authorization server defends
// against mix-up; RFC 9207 `iss`, checked for every provider with an issuer, is the other defence).

export const CALLBACK_PATH = '/oauth/callback';

/** The callback path of a provider: `redirect_path` when the definition sets one, else the shared or the per-provider default. */
export const redirectPathOf = (provider: Pick<Provider, 'id' | 'redirect_path'>, perProvider = false): string =>
  provider.redirect_path ?? (perProvider ? `${CALLBACK_PATH}/${provider.id}` : CALLBACK_PATH);

/** The exact redirect URI Warrant sends for a provider, the one to register at the IdP. */
export const redirectUriOf = (publicUrl: string, provider: Pick<Provider, 'id' | 'redirect_path'>, perProvider = false): string =>
  `${publicUrl.replace(/\/+$/, '')}${redirectPathOf(provider, perProvider)}`;
