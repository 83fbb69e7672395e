import type { Provider } from '../providers/index.ts';

// Refresh-token rotation as each provider documents it (catalog fields `refresh_token_rotation`,
// `refresh_token_grace_period`, `refresh_token_reusable`). RFC 9700 §4.14.2: a rotating IdP that
// sees a consumed refresh token again may revoke the whole grant, and reads it as token theft.

/** Sending a used refresh token again is refused (and may revoke the grant). */
export const rotatesStrictly = (p: Pick<Provider, 'refresh_token_rotation' | 'refresh_token_reusable'>) =>
  p.refresh_token_rotation === true && p.refresh_token_reusable !== true;

/**
 * May the stored refresh token be sent? Always, unless a refresh's outcome became unknown at a
 * strictly rotating provider (the IdP may have consumed it); then only within the provider's
 * grace period, during which the previous token still works.
 */
export function replayAllowed(
  row: { refresh_indeterminate_at: number | null },
  provider: Pick<Provider, 'refresh_token_rotation' | 'refresh_token_reusable' | 'refresh_token_grace_period'>,
  now: number,
): boolean {
  if (row.refresh_indeterminate_at === null || !rotatesStrictly(provider)) return true;
  return now <= row.refresh_indeterminate_at + (provider.refresh_token_grace_period ?? 0) * 1000;
}
