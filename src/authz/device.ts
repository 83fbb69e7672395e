import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { hashSecret } from '../crypto/index.ts';
import type { Store } from '../store/index.ts';
import { authzPaths } from './options.ts';
import { authzTables } from './tables.ts';

// The device authorization grant (RFC 8628) beyond what oidc-provider does: the polling interval
// in the device authorization response (§3.2), and `slow_down` (§3.5) for a client polling faster
// than it. The last poll of each device code is a row of `authz_models` (kind `DevicePoll`, the
// key a hash of the device code), so every instance sees the same clock: polling instance A then
// instance B at once is still too fast.

const KIND = 'DevicePoll';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface DevicePollingDeps {
  store: Pick<Store, 'db'>;
  now: () => number;
  /** Seconds a client waits between polls (RFC 8628 §3.2 `interval`). */
  intervalSeconds: number;
  /** How long a poll row is kept (the device code's lifetime), in seconds. */
  ttlSeconds: number;
}

export function devicePolling(provider: Provider, deps: DevicePollingDeps): void {
  const db = authzTables(deps.store.db);
  const intervalMs = deps.intervalSeconds * 1000;

  /** Records this poll; true when the previous one was less than an interval ago. */
  async function tooFast(deviceCode: string): Promise<boolean> {
    const key = hashSecret(`${KIND}:${deviceCode}`);
    const now = deps.now();
    const due = await db
      .updateTable('authz_models')
      .set({ consumed_at: now })
      .where('kind', '=', KIND)
      .where('key', '=', key)
      .where('consumed_at', '<=', now - intervalMs)
      .executeTakeFirst();
    if (Number(due.numUpdatedRows) === 1) return false;
    const inserted = await db
      .insertInto('authz_models')
      .values({ kind: KIND, key, grant_id: null, uid: null, user_code: null, generation: null, expires_at: now + deps.ttlSeconds * 1000, consumed_at: now, created_at: now })
      .onConflict((oc) => oc.columns(['kind', 'key']).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return false;
    // Polled again too soon: the clock restarts, so a client that does not back off never gets through.
    await db.updateTable('authz_models').set({ consumed_at: now }).where('kind', '=', KIND).where('key', '=', key).execute();
    return true;
  }

  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as unknown as KoaContextWithOIDC).oidc;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object') return;
    if (ctx.path === authzPaths.routes.device_authorization && ctx.status === 200 && typeof body.device_code === 'string') {
      ctx.body = { ...body, interval: deps.intervalSeconds };
      return;
    }
    if (ctx.path === authzPaths.routes.token && body.error === 'authorization_pending' && oidc?.params?.grant_type === DEVICE_GRANT) {
      const code = oidc.params.device_code;
      if (typeof code === 'string' && (await tooFast(code))) {
        ctx.body = { error: 'slow_down', error_description: `poll at most every ${deps.intervalSeconds} seconds, and wait 5 seconds more from now on (RFC 8628 §3.5)` };
      }
    }
  });
}
