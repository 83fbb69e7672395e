import type Provider from 'oidc-provider';
import type { AdapterInspector } from './adapter.ts';

// The controls a person uses to show a failure by hand, without holding any token: what an IdP
// admin does to every grant of a user (or of everyone), and tokens dying before their time.

export type RevokeTarget = { user: string } | { all: true };

export interface RevokeOutcome {
  /** Grants revoked: each took its access tokens, refresh tokens and authorization codes with it. */
  revoked: number;
  /** Client-credentials tokens destroyed (only with `all`: they belong to no user). */
  clientCredentials: number;
}

/**
 * Revokes every grant of one sandbox user (its account id, `sandbox-user` unless a `login_hint`
 * named another) or of everyone: the next refresh answers invalid_grant, the API 401.
 */
export async function revokeGrants(provider: Provider, inspector: AdapterInspector, target: RevokeTarget): Promise<RevokeOutcome> {
  const all = 'all' in target;
  const grants = inspector.entries('Grant').filter((g) => all || g.payload.accountId === target.user);
  for (const { id } of grants) {
    await Promise.all([
      provider.AccessToken.revokeByGrantId(id),
      provider.RefreshToken.revokeByGrantId(id),
      provider.AuthorizationCode.revokeByGrantId(id),
      provider.Grant.adapter.destroy(id),
    ]);
  }
  let clientCredentials = 0;
  if (all) {
    for (const { id } of inspector.entries('ClientCredentials')) {
      await provider.ClientCredentials.adapter.destroy(id);
      clientCredentials += 1;
    }
  }
  return { revoked: grants.length, clientCredentials };
}

/**
 * Makes every access token (and client-credentials token) issued so far expired as of now: the
 * API answers 401 `invalid_token` "expired" to them, as after a long night; grants and refresh
 * tokens are untouched, so a refresh heals. Answers how many tokens it expired.
 */
export function expireAccessTokens(inspector: AdapterInspector, nowSeconds = Math.floor(Date.now() / 1000)): number {
  let expired = 0;
  for (const model of ['AccessToken', 'ClientCredentials']) {
    for (const { id, payload } of inspector.entries(model)) {
      if (typeof payload.exp === 'number' && payload.exp < nowSeconds) continue;
      if (inspector.setExpiry(model, id, nowSeconds - 1)) expired += 1;
    }
  }
  return expired;
}

/** Live grants and unexpired access tokens, for the status control. */
export function countLive(inspector: AdapterInspector, nowSeconds = Math.floor(Date.now() / 1000)) {
  const live = (model: string) =>
    inspector.entries(model).filter((e) => !e.payload.consumed && (typeof e.payload.exp !== 'number' || e.payload.exp >= nowSeconds)).length;
  return { grants: live('Grant'), accessTokens: live('AccessToken') + live('ClientCredentials'), refreshTokens: live('RefreshToken') };
}
