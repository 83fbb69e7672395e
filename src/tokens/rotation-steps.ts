import { createHmac, randomBytes } from 'node:crypto';
import { classify } from '../oauth/index.ts';
import type { Provider } from '../providers/index.ts';
import type { ConnectionRow, CredentialRotationRow, Db } from '../store/index.ts';
import type { AuditInput } from '../events/index.ts';
import { WarrantError } from '../errors/index.ts';
import type { ConnectionServiceDeps } from './connections.ts';
import { parseJson } from './refresh.ts';
import { EXPIRING_EVENT, noticeDue } from './expiry-notices.ts';
import { newKeyPairFor, thumbprintOf } from './rotation-keys.ts';

// The steps of a rotation, each safe to run on several instances at once: a step that must happen
// once (a key generated, a key promoted, a notice sent) is a conditional write in the store, and
// the refresh of a refresh token goes through the token service's lock and claim.

export const DAY_MS = 86_400_000;
/** A new JWT-bearer key pair is made this long before its schedule's deadline, for the upload. */
export const KEY_LEAD_MS = 14 * DAY_MS;
/** A forced refresh that did not rotate is tried again after this long (and alerts each time). */
const FAILED_RETRY_MS = DAY_MS;

export type RotationKind = CredentialRotationRow['kind'];
export type Verification = 'introspection' | 'token_request' | 'unsupported';

/** What one step did, as the run reports it (wire names). */
export interface StepOutcome {
  kind: RotationKind;
  connection?: string;
  provider: string;
  environment: string;
  outcome: 'completed' | 'failed' | 'pending' | 'verifying' | 'skipped' | 'planned' | 'notified';
  verified?: boolean;
  verification?: Verification;
  detail: string;
  /** A key rotation: the new key's RFC 7638 thumbprint (its public half: GET /v1/rotations/{connection}). */
  public_key_thumbprint?: string;
}

/** What the connection service is given, less its timing settings. */
export interface StepDeps extends Omit<ConnectionServiceDeps, 'timing'> {
  env?: NodeJS.ProcessEnv;
}

export function createRotationSteps(deps: StepDeps) {
  const { store, clock, logger } = deps;
  const secretKey = (ref: string, field: string) => ({ scope: 'connection', ref, field });

  async function publish(entries: AuditInput[], trx?: Db) {
    return deps.audit.append(entries, trx);
  }

  const base = (row: ConnectionRow, kind: RotationKind) => ({ kind, connection: row.id, provider: row.provider, environment: row.environment });
  const eventData = (row: ConnectionRow, kind: RotationKind, extra: Record<string, unknown>) => ({
    connection: row.id,
    provider: row.provider,
    environment: row.environment,
    owner: row.owner,
    kind,
    ...extra,
  });

  /** rotation.failed, audited and published; the warn line carries no secret. */
  async function failed(row: ConnectionRow, kind: RotationKind, why: string, actor: string, extra: Record<string, unknown> = {}): Promise<void> {
    deps.bus.publish(await publish([{ type: 'rotation.failed', actor, subject: `connection:${row.id}`, data: eventData(row, kind, { why, ...extra }) }]));
    logger.warn({ connection: row.id, provider: row.provider, owner: row.owner, kind, why }, 'credential rotation failed');
  }

  async function completed(row: ConnectionRow, kind: RotationKind, verified: boolean, verification: Verification, detail: string, actor: string, extra: Record<string, unknown> = {}, trx?: Db) {
    return publish([{ type: 'rotation.completed', actor, subject: `connection:${row.id}`, data: eventData(row, kind, { verified, verification, detail, ...extra }) }], trx);
  }

  /** A failed forced refresh: counted, retried a day later, alerted. */
  async function refreshFailed(row: ConnectionRow, why: string, actor: string, rot: CredentialRotationRow | undefined): Promise<StepOutcome> {
    const now = clock.now();
    const patch = { state: 'tracked' as const, failures: (rot?.failures ?? 0) + 1, next_attempt_at: now + FAILED_RETRY_MS, last_error: why, updated_at: now };
    if (rot) await store.rotations.updateIf('refresh_token', row.id, {}, patch);
    else await store.rotations.insertIfAbsent(emptyRow('refresh_token', row.id, now, patch));
    await failed(row, 'refresh_token', why, actor);
    return { ...base(row, 'refresh_token'), outcome: 'failed', detail: why };
  }

  /**
   * Checks that the old refresh token is dead: introspection (RFC 7662) only. It is never sent to
   * the token endpoint to see: at a rotating IdP a consumed token coming back reads as theft and
   * may revoke the whole grant (RFC 9700 §4.14.2).
   */
  async function verifyOld(row: ConnectionRow, provider: Provider, old: string, actor: string, trx?: Db): Promise<StepOutcome> {
    const client = deps.clients(provider, row.environment, parseJson(row.params, {}));
    const out = base(row, 'refresh_token');
    try {
      const info = await client.introspect(old, 'refresh_token');
      if (info.active) {
        const why = 'introspection still reports the old refresh token active after the rotation';
        await failed(row, 'refresh_token', why, actor, { verified: false, verification: 'introspection' });
        return { ...out, outcome: 'failed', verified: false, verification: 'introspection', detail: why };
      }
      const detail = 'introspection reports the old refresh token inactive';
      deps.bus.publish(await completed(row, 'refresh_token', true, 'introspection', detail, actor, {}, trx));
      return { ...out, outcome: 'completed', verified: true, verification: 'introspection', detail };
    } catch (err) {
      const detail = `rotated, but the old refresh token could not be checked (introspection: ${classify(err, 'introspection').error})`;
      deps.bus.publish(await completed(row, 'refresh_token', false, 'introspection', detail, actor, {}, trx));
      return { ...out, outcome: 'completed', verified: false, verification: 'introspection', detail };
    }
  }

  return {
    /**
     * A forced refresh at an IdP that rotates refresh tokens, through the token service (its lock
     * and claim: once across instances), then the old refresh token verified dead.
     */
    async rotateRefreshToken(row: ConnectionRow, provider: Provider, actor: string, rot: CredentialRotationRow | undefined): Promise<StepOutcome> {
      const out = base(row, 'refresh_token');
      const old = await store.vault.get(secretKey(row.id, 'refresh_token'));
      if (!old) return { ...out, outcome: 'skipped', detail: 'the connection holds no refresh token' };
      try {
        const r = await deps.tokens.getFreshToken(row.id, { refreshedAtOrBefore: row.last_refreshed_at ?? row.created_at, actor });
        if (!r.refreshed) return { ...out, outcome: 'skipped', detail: 'refreshed meanwhile by another instance or caller' };
      } catch (err) {
        if (!(err instanceof WarrantError)) throw err;
        return refreshFailed(row, `the forced refresh failed (${err.code}): ${err.message}`, actor, rot);
      }
      const now = clock.now();
      const current = await store.vault.get(secretKey(row.id, 'refresh_token'));
      if (!current || current === old) return refreshFailed(row, 'the IdP answered the forced refresh without a new refresh token', actor, rot);
      if (rot) await store.rotations.delete('refresh_token', row.id);
      if (provider.refresh_token_reusable) {
        const detail = 'rotated; the provider keeps a used refresh token valid until its own expiry (refresh_token_reusable), so the old one cannot be shown dead';
        deps.bus.publish(await completed(row, 'refresh_token', false, 'unsupported', detail, actor));
        return { ...out, outcome: 'completed', verified: false, verification: 'unsupported', detail };
      }
      const client = deps.clients(provider, row.environment, parseJson(row.params, {}));
      if (!client.endpoints.introspection_url) {
        const detail = 'rotated; unverified: the provider has no introspection endpoint, and the old token is never replayed to test it';
        deps.bus.publish(await completed(row, 'refresh_token', false, 'unsupported', detail, actor));
        return { ...out, outcome: 'completed', verified: false, verification: 'unsupported', detail };
      }
      const grace = (provider.refresh_token_grace_period ?? 0) * 1000;
      if (grace > 0) {
        // The previous token works on for the grace period by design: checked once it has passed.
        await store.transaction(async (trx) => {
          await store.vault.put(secretKey(row.id, 'previous_refresh_token'), old, trx);
          const patch = { state: 'verifying' as const, started_at: now, verify_after: now + grace, failures: 0, next_attempt_at: null, last_error: null, updated_at: now };
          if (!(await store.rotations.insertIfAbsent(emptyRow('refresh_token', row.id, now, patch), trx))) await store.rotations.updateIf('refresh_token', row.id, {}, patch, trx);
        });
        return { ...out, outcome: 'verifying', detail: `rotated; the old refresh token is checked after the provider's ${provider.refresh_token_grace_period} s grace period` };
      }
      return verifyOld(row, provider, old, actor);
    },

    /** The deferred check of an old refresh token, once its grace period is over. */
    async verifyDeferred(row: ConnectionRow, provider: Provider, rot: CredentialRotationRow, actor: string): Promise<StepOutcome> {
      const old = await store.vault.get(secretKey(row.id, 'previous_refresh_token'));
      // Claimed first: one instance checks and reports.
      if (!(await store.rotations.updateIf('refresh_token', row.id, { state: 'verifying', started_at: rot.started_at }, { state: 'tracked', verify_after: null, started_at: null, updated_at: clock.now() }))) {
        return { ...base(row, 'refresh_token'), outcome: 'skipped', detail: 'checked meanwhile by another instance' };
      }
      await store.vault.delete(secretKey(row.id, 'previous_refresh_token'));
      if (!old) return { ...base(row, 'refresh_token'), outcome: 'skipped', detail: 'the old refresh token is gone (the connection was re-connected)' };
      return verifyOld(row, provider, old, actor);
    },

    /** Makes the new key pair, sealed as pending (one per connection across instances), and announces it for upload. */
    async startKeyRotation(row: ConnectionRow, provider: Provider, actor: string, rot: CredentialRotationRow | undefined, dueAt: number): Promise<StepOutcome> {
      const out = base(row, 'private_key');
      const old = await store.vault.get(secretKey(row.id, 'private_key'));
      const pair = await newKeyPairFor(provider, old);
      const now = clock.now();
      const thumbprint = (await thumbprintOf(pair.publicKeyPem))!;
      const patch = { state: 'pending' as const, started_at: now, public_key: pair.publicKeyPem, failures: 0, next_attempt_at: null, last_error: null, notice: null, updated_at: now };
      const entries = await store.transaction(async (trx) => {
        const claimed = rot
          ? await store.rotations.updateIf('private_key', row.id, { state: 'tracked', started_at: rot.started_at }, patch, trx)
          : await store.rotations.insertIfAbsent(emptyRow('private_key', row.id, now, patch), trx);
        if (!claimed) return undefined;
        await store.vault.put(secretKey(row.id, 'pending_private_key'), pair.privateKeyPem, trx);
        return publish(
          [
            {
              type: 'rotation.started',
              actor,
              subject: `connection:${row.id}`,
              data: eventData(row, 'private_key', { public_key_thumbprint: thumbprint, due_at: new Date(dueAt).toISOString(), public_key_path: `/v1/rotations/${row.id}` }),
            },
          ],
          trx,
        );
      });
      if (!entries) return { ...out, outcome: 'skipped', detail: 'another instance started this rotation' };
      deps.bus.publish(entries);
      logger.warn({ connection: row.id, provider: row.provider, public_key_thumbprint: thumbprint }, 'new JWT-bearer key pair made: upload its public key to the IdP (warrant rotate --public-key)');
      return { ...out, outcome: 'pending', public_key_thumbprint: thumbprint, detail: 'new key pair made: upload its public key to the IdP; the old key is used until the new one is seen working' };
    },

    /**
     * A token request with the pending key: when it works, the pending key becomes the key and the
     * old one is deleted from the vault (retired); until then the old key is used and the check is
     * repeated with backoff. Past the deadline: one rotation.failed.
     */
    async checkPendingKey(row: ConnectionRow, provider: Provider, rot: CredentialRotationRow, actor: string, dueAt: number): Promise<StepOutcome> {
      const out = base(row, 'private_key');
      const pending = await store.vault.get(secretKey(row.id, 'pending_private_key'));
      const newThumb = await thumbprintOf(rot.public_key ?? undefined);
      if (!pending) {
        await store.rotations.updateIf('private_key', row.id, { state: 'pending', started_at: rot.started_at }, { state: 'tracked', started_at: null, public_key: null, updated_at: clock.now() });
        return { ...out, outcome: 'skipped', detail: 'the pending key is gone (the connection was re-imported); a new one is made when due' };
      }
      const params = parseJson<Record<string, string>>(row.params, {});
      try {
        // The token is a test of the key only: not stored, not shown; it expires on its own.
        await deps.clients(provider, row.environment, params).jwtBearer({ privateKeyPem: pending, subject: params.subject, scopes: parseJson<string[]>(row.requested_scopes, []) });
      } catch (err) {
        const e = classify(err, 'jwt bearer with the new key');
        const now = clock.now();
        const failures = rot.failures + 1;
        const why = `the IdP does not accept the new key yet (${e.error}): upload its public key`;
        await store.rotations.updateIf('private_key', row.id, { state: 'pending', started_at: rot.started_at }, {
          failures,
          next_attempt_at: now + Math.min(3_600_000, 60_000 * 2 ** Math.min(failures, 6)),
          last_error: e.error,
          updated_at: now,
        });
        if (now >= dueAt && rot.notice !== 'overdue' && (await store.rotations.updateIf('private_key', row.id, { state: 'pending', started_at: rot.started_at, notice: rot.notice }, { notice: 'overdue' }))) {
          await failed(row, 'private_key', `past its rotation deadline: ${why}`, actor, { public_key_thumbprint: newThumb, overdue: true });
        }
        return { ...out, outcome: 'pending', public_key_thumbprint: newThumb, detail: why };
      }
      const now = clock.now();
      const entries = await store.transaction(async (trx) => {
        const won = await store.rotations.updateIf(
          'private_key',
          row.id,
          { state: 'pending', started_at: rot.started_at },
          { state: 'tracked', started_at: null, public_key: null, failures: 0, next_attempt_at: null, last_error: null, notice: null, updated_at: now },
          trx,
        );
        if (!won) return undefined;
        const old = await store.vault.get(secretKey(row.id, 'private_key'), trx);
        await store.vault.put(secretKey(row.id, 'private_key'), pending, trx);
        await store.vault.delete(secretKey(row.id, 'pending_private_key'), trx);
        await store.rotations.setCredentialIssuedAt(row.id, now, trx);
        const detail = 'the new key obtained a token; the old key is retired (deleted from the vault): delete its public key at the IdP';
        return completed(row, 'private_key', true, 'token_request', detail, actor, { old_key_thumbprint: await thumbprintOf(old), new_key_thumbprint: newThumb }, trx);
      });
      if (!entries) return { ...out, outcome: 'skipped', detail: 'completed meanwhile by another instance' };
      deps.bus.publish(entries);
      return { ...out, outcome: 'completed', verified: true, verification: 'token_request', public_key_thumbprint: newThumb, detail: 'the new key obtained a token; the old key is retired' };
    },

    /** The keyed fingerprint of a client secret: an HMAC under a random key sealed in the vault (made once). */
    async fingerprinter(): Promise<(provider: string, environment: string, secret: string) => string> {
      const key = { scope: 'rotation', ref: 'client_secret', field: 'fingerprint_key' };
      await store.vault.putIfAbsent(key, randomBytes(32).toString('base64'));
      const k = Buffer.from((await store.vault.get(key))!, 'base64');
      return (provider, environment, secret) => createHmac('sha256', k).update(`${provider}\n${environment}\n${secret}`).digest('base64url');
    },

    /**
     * A client secret as configured now: first seen → its age starts; changed (and not back to the
     * one before: an instance not yet restarted) → rotation.completed; near its deadline → a
     * `credential.expiring` to the admin, 14 and 2 days before, once each.
     */
    async observeClientSecret(p: { provider: string; environment: string; fingerprint: string; row: CredentialRotationRow | undefined; dueMs: number; actor: string }): Promise<StepOutcome | undefined> {
      const ref = `${p.provider}/${p.environment}`;
      const now = clock.now();
      const out = { kind: 'client_secret' as const, provider: p.provider, environment: p.environment };
      let row = p.row;
      if (!row) {
        await store.rotations.insertIfAbsent(emptyRow('client_secret', ref, now, { issued_at: now, fingerprint: p.fingerprint }));
        row = await store.rotations.get('client_secret', ref);
        if (!row) return undefined;
      }
      if (row.fingerprint !== p.fingerprint && row.previous_fingerprint !== p.fingerprint) {
        const entries = await store.transaction(async (trx) => {
          const won = await store.rotations.updateIf('client_secret', ref, { fingerprint: row.fingerprint }, { fingerprint: p.fingerprint, previous_fingerprint: row.fingerprint, issued_at: now, notice: null, updated_at: now }, trx);
          if (!won) return undefined;
          const detail = 'a new client secret is configured; delete the old one at the provider once every instance runs with the new one';
          return publish([{ type: 'rotation.completed', actor: p.actor, subject: `provider:${p.provider}`, data: { provider: p.provider, environment: p.environment, kind: 'client_secret', verified: false, verification: 'unsupported', detail } }], trx);
        });
        if (entries) {
          deps.bus.publish(entries);
          return { ...out, outcome: 'completed', verified: false, verification: 'unsupported', detail: 'a new client secret is configured' };
        }
        return undefined;
      }
      if (row.fingerprint !== p.fingerprint || row.issued_at === null) return undefined;
      const dueAt = row.issued_at + p.dueMs;
      const notice = noticeDue(dueAt, now);
      if (!notice || notice === row.notice || (row.notice === '2d' && notice === '14d')) return undefined;
      const daysLeft = Math.max(0, Math.ceil((dueAt - now) / DAY_MS));
      const entries = await store.transaction(async (trx) => {
        if (!(await store.rotations.updateIf('client_secret', ref, { fingerprint: p.fingerprint, notice: row.notice }, { notice, updated_at: now }, trx))) return undefined;
        return publish(
          [
            {
              type: EXPIRING_EVENT,
              actor: p.actor,
              subject: `provider:${p.provider}`,
              data: { provider: p.provider, environment: p.environment, kind: 'client_secret', dies_at: new Date(dueAt).toISOString(), reason: 'rotation_due', days_left: daysLeft, notice },
            },
          ],
          trx,
        );
      });
      if (!entries) return undefined;
      deps.bus.publish(entries);
      logger.warn({ provider: p.provider, environment: p.environment, days_left: daysLeft }, `client secret due for rotation in ${daysLeft} day(s): make a new one at the provider and configure it`);
      return { ...out, outcome: 'notified', detail: `credential.expiring sent (${notice}): the client secret is due in ${daysLeft} day(s)` };
    },
  };
}

/** A fresh bookkeeping row with `patch` over the defaults. */
export function emptyRow(kind: RotationKind, ref: string, now: number, patch: Partial<CredentialRotationRow>): CredentialRotationRow {
  return {
    kind,
    ref,
    state: 'tracked',
    issued_at: null,
    fingerprint: null,
    previous_fingerprint: null,
    started_at: null,
    public_key: null,
    verify_after: null,
    notice: null,
    failures: 0,
    next_attempt_at: null,
    last_error: null,
    updated_at: now,
    ...patch,
  };
}

export type RotationSteps = ReturnType<typeof createRotationSteps>;
