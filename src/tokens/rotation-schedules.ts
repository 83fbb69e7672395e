import type { Logger } from 'pino';
import { WarrantError, notFound } from '../errors/index.ts';
import type { Provider } from '../providers/index.ts';
import type { ConnectionRow, CredentialRotationRow, Store } from '../store/index.ts';
import { LockTimeoutError, type Locks } from '../locks/index.ts';
import type { AuditLog, EventBus } from '../events/index.ts';
import { iso } from '../util/time.ts';
import { clientCredentialsFor, type ClientResolver } from './clients.ts';
import type { Clock, TokenService } from './service.ts';
import { cannotRotateRefreshTokens, type ExpiryNotices } from './expiry-notices.ts';
import { publicKeyView, type PublicKeyView } from './rotation-keys.ts';
import { createRotationSteps, DAY_MS, KEY_LEAD_MS, type RotationKind, type StepOutcome } from './rotation-steps.ts';

// Rotation schedules (DESIGN.md "Owners and governance"; docs/governance.md "Rotation schedules").
// Each kind of long-lived credential has a maximum age (WARRANT_ROTATE_*_DAYS):
//   refresh tokens   where the IdP rotates: a forced refresh, then the old token verified dead;
//                    where it cannot: `credential.expiring` to the owner (expiry-notices.ts)
//   JWT-bearer keys  a new key pair 14 days ahead, its public half shown for upload, the old key
//                    used until the new one obtains a token, then retired
//   client secrets   Warrant cannot make one: its age is tracked from a keyed fingerprint and
//                    `credential.expiring` goes to the admin before the deadline
// A pass runs under one lock across instances (the scheduler every few minutes, or
// `warrant rotate --due`); each step is also safe on its own (rotation-steps.ts).

export interface RotationSettings {
  refreshTokenDays: number;
  privateKeyDays: number;
  clientSecretDays: number;
}

export type RotationState = 'current' | 'due' | 'pending' | 'verifying' | 'owner_action' | 'admin_action';
export type RotationAction = 'none' | 'refresh' | 'generate_key' | 'check_key' | 'verify_old_token' | 'notify';

/** One tracked credential, as GET /v1/rotations shows it (wire names; never a secret). */
export interface RotationItem {
  kind: RotationKind;
  connection?: string;
  provider: string;
  environment: string;
  owner?: string;
  issued_at: string | null;
  due_at: string | null;
  state: RotationState;
  /** What the next pass does about it. */
  action: RotationAction;
  last_error?: string;
  next_attempt_at?: string;
}

export interface RunReport {
  dry_run: boolean;
  results: StepOutcome[];
  /** `credential.expiring` notices sent by this pass for grants (owners' re-connects). */
  notices_sent: number;
}

export interface RotationStatus extends RotationItem {
  /** A JWT-bearer key rotation under way: the public key to upload. */
  pending_key?: PublicKeyView & { since: string };
}

export interface RotationDeps {
  store: Store;
  catalog: Map<string, Provider>;
  tokens: TokenService;
  clients: ClientResolver;
  locks: Locks;
  audit: AuditLog;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  settings: RotationSettings;
  env?: NodeJS.ProcessEnv;
  /** Sends the grants' `credential.expiring` notices (rotation_due among them) in a manual pass. */
  expiry?: ExpiryNotices;
}

interface Planned {
  item: RotationItem;
  row?: ConnectionRow;
  rot?: CredentialRotationRow;
  provider: Provider;
  dueAt: number;
}

const PASS_LOCK = 'rotations';
const NOTICE_LEAD_MS = 14 * DAY_MS;
const LIST_LIMIT = 1000;

const hasClientSecret = (p: Provider) =>
  (p.auth === 'oauth2' || p.auth === 'client_credentials') && (p.token_auth_method === 'client_secret_basic' || p.token_auth_method === 'client_secret_post');

export function createRotations(deps: RotationDeps) {
  const { store, catalog, clock, settings } = deps;
  const steps = createRotationSteps(deps);
  const days = (n: number) => n * DAY_MS;

  const providers = (test: (p: Provider) => boolean) => [...catalog.values()].filter(test);

  /** Every credential the schedules cover, or (due) those that need something now or soon. */
  async function plan(opts: { due: boolean; connection?: string; force?: boolean; limit?: number }): Promise<Planned[]> {
    const now = clock.now();
    const limit = Math.min(opts.limit ?? LIST_LIMIT, LIST_LIMIT);
    const ids = opts.connection ? [opts.connection] : undefined;
    // `force`: one connection's credential rotated now, whatever its age (POST /v1/rotations/run?connection=).
    const force = !!(ids && opts.force);
    const out: Planned[] = [];

    if (settings.refreshTokenDays > 0) {
      const ttl = days(settings.refreshTokenDays);
      const oauth = providers((p) => p.auth === 'oauth2');
      const verifying = await store.rotations.list('refresh_token', { refs: ids });
      const rots = new Map(verifying.map((r) => [r.ref, r]));
      const rotating = oauth.filter((p) => !cannotRotateRefreshTokens(p)).map((p) => p.id);
      const fixed = oauth.filter((p) => cannotRotateRefreshTokens(p)).map((p) => p.id);
      const rows = [
        ...(await store.rotations.candidates(rotating, 'refresh_token', { issuedBefore: opts.due && !ids ? now - ttl : undefined, ids, limit })),
        ...(await store.rotations.candidates(fixed, 'refresh_token', { issuedBefore: opts.due && !ids ? now - ttl + NOTICE_LEAD_MS : undefined, ids, limit })),
      ];
      const seen = new Set(rows.map((r) => r.id));
      const waiting = verifying.filter((r) => r.state === 'verifying' && !seen.has(r.ref)).map((r) => r.ref);
      rows.push(...(await store.rotations.candidates(oauth.map((p) => p.id), 'refresh_token', { ids: waiting, limit })));
      for (const row of rows) {
        const provider = catalog.get(row.provider)!;
        if (!row.has_secret) continue;
        const rot = rots.get(row.id);
        const issued = row.credential_issued_at ?? row.created_at;
        const dueAt = issued + ttl;
        const item = baseItem('refresh_token', row, issued, dueAt);
        if (rot?.state === 'verifying') Object.assign(item, { state: 'verifying', action: (rot.verify_after ?? 0) <= now ? 'verify_old_token' : 'none' });
        else if (cannotRotateRefreshTokens(provider)) Object.assign(item, dueAt - NOTICE_LEAD_MS <= now ? { state: 'owner_action', action: 'notify' } : {});
        else if (dueAt <= now || force) {
          const held = row.status !== 'active' || row.failure_count > 0 ? 'refreshes of this connection are failing' : undefined;
          const later = rot?.next_attempt_at && rot.next_attempt_at > now && !force ? rot.next_attempt_at : undefined;
          Object.assign(item, { state: 'due', action: held || later ? 'none' : 'refresh' });
          if (held) item.last_error = held;
        }
        withFailure(item, rot);
        if (!opts.due || item.state !== 'current') out.push({ item, row, rot, provider, dueAt });
      }
    }

    if (settings.privateKeyDays > 0) {
      const ttl = days(settings.privateKeyDays);
      const lead = Math.min(KEY_LEAD_MS, ttl / 2);
      const jwt = providers((p) => p.auth === 'jwt_bearer').map((p) => p.id);
      const rots = await store.rotations.list('private_key', { refs: ids });
      const byRef = new Map(rots.map((r) => [r.ref, r]));
      const pending = rots.filter((r) => r.state === 'pending').map((r) => r.ref);
      const rows = await store.rotations.candidates(jwt, 'private_key', { issuedBefore: opts.due && !ids ? now - ttl + lead : undefined, ids, limit });
      const seen = new Set(rows.map((r) => r.id));
      rows.push(...(await store.rotations.candidates(jwt, 'private_key', { ids: pending.filter((id) => !seen.has(id)), limit })));
      for (const row of rows) {
        if (!row.has_secret) continue;
        const rot = byRef.get(row.id);
        const issued = row.credential_issued_at ?? row.created_at;
        const dueAt = issued + ttl;
        const item = baseItem('private_key', row, issued, dueAt);
        if (rot?.state === 'pending') {
          Object.assign(item, { state: 'pending', action: !rot.next_attempt_at || rot.next_attempt_at <= now || force ? 'check_key' : 'none' });
        } else if (dueAt - lead <= now || force) Object.assign(item, { state: 'due', action: 'generate_key' });
        withFailure(item, rot);
        if (!opts.due || item.state !== 'current') out.push({ item, row, rot, provider: catalog.get(row.provider)!, dueAt });
      }
    }

    if (settings.clientSecretDays > 0 && !ids) {
      const ttl = days(settings.clientSecretDays);
      const rots = new Map((await store.rotations.list('client_secret')).map((r) => [r.ref, r]));
      for (const provider of providers(hasClientSecret)) {
        for (const environment of Object.keys(provider.environments)) {
          if (!clientCredentialsFor(provider, environment, deps.env).clientSecret) continue;
          const rot = rots.get(`${provider.id}/${environment}`);
          const issued = rot?.issued_at ?? null;
          const dueAt = issued === null ? now + ttl : issued + ttl;
          const item: RotationItem = { kind: 'client_secret', provider: provider.id, environment, issued_at: iso(issued), due_at: iso(issued === null ? null : dueAt), state: 'current', action: 'none' };
          if (issued !== null && dueAt - NOTICE_LEAD_MS <= now) Object.assign(item, { state: 'admin_action', action: 'notify' });
          if (!opts.due || item.state !== 'current') out.push({ item, rot, provider, dueAt });
        }
      }
    }
    return out.slice(0, limit);
  }

  function baseItem(kind: RotationKind, row: ConnectionRow, issued: number, dueAt: number): RotationItem {
    return { kind, connection: row.id, provider: row.provider, environment: row.environment, owner: row.owner, issued_at: iso(issued), due_at: iso(dueAt), state: 'current', action: 'none' };
  }

  function withFailure(item: RotationItem, rot: CredentialRotationRow | undefined) {
    if (rot?.last_error) item.last_error = rot.last_error;
    if (rot?.next_attempt_at && rot.next_attempt_at > clock.now()) item.next_attempt_at = iso(rot.next_attempt_at);
  }

  /** What a dry run says a step would do. */
  const planned = (p: Planned): StepOutcome => ({
    kind: p.item.kind,
    ...(p.item.connection ? { connection: p.item.connection } : {}),
    provider: p.item.provider,
    environment: p.item.environment,
    outcome: 'planned',
    detail: {
      refresh: 'would force a refresh (the IdP rotates the refresh token), then verify the old one dead',
      generate_key: 'would make a new key pair and show its public key for upload',
      check_key: 'would request a token with the pending key and, if it works, retire the old key',
      verify_old_token: 'would check by introspection that the old refresh token is dead',
      notify: p.item.kind === 'client_secret' ? 'would send credential.expiring to the admin (Warrant cannot make a client secret)' : 'would send credential.expiring to the owner (the provider cannot rotate: the owner must re-connect)',
      none: 'nothing to do yet',
    }[p.item.action],
  });

  async function step(p: Planned, actor: string): Promise<StepOutcome | undefined> {
    const { row, rot, provider } = p;
    switch (p.item.action) {
      case 'refresh':
        return steps.rotateRefreshToken(row!, provider, actor, rot);
      case 'verify_old_token':
        return steps.verifyDeferred(row!, provider, rot!, actor);
      case 'generate_key':
        return steps.startKeyRotation(row!, provider, actor, rot, p.dueAt);
      case 'check_key':
        return steps.checkPendingKey(row!, provider, rot!, actor, p.dueAt);
      default:
        return undefined;
    }
  }

  /** Client secrets: fingerprints observed on every pass (their age starts when first seen), notices when near the deadline. */
  async function clientSecrets(actor: string): Promise<StepOutcome[]> {
    if (settings.clientSecretDays <= 0) return [];
    const fingerprint = await steps.fingerprinter();
    const rows = new Map((await store.rotations.list('client_secret')).map((r) => [r.ref, r]));
    const results: StepOutcome[] = [];
    for (const provider of providers(hasClientSecret)) {
      for (const environment of Object.keys(provider.environments)) {
        const secret = clientCredentialsFor(provider, environment, deps.env).clientSecret;
        if (!secret) continue;
        const r = await steps.observeClientSecret({
          provider: provider.id,
          environment,
          fingerprint: fingerprint(provider.id, environment, secret),
          row: rows.get(`${provider.id}/${environment}`),
          dueMs: days(settings.clientSecretDays),
          actor,
        });
        if (r) results.push(r);
      }
    }
    return results;
  }

  async function pass(opts: { dryRun: boolean; connection?: string; actor: string; manual: boolean }): Promise<RunReport> {
    const planList = await plan({ due: true, connection: opts.connection, force: true });
    if (opts.dryRun) return { dry_run: true, results: planList.filter((p) => p.item.action !== 'none').map(planned), notices_sent: 0 };
    const results: StepOutcome[] = [];
    for (const p of planList) {
      try {
        const r = await step(p, opts.actor);
        if (r) results.push(r);
      } catch (err) {
        deps.logger.error({ err, kind: p.item.kind, connection: p.item.connection, provider: p.item.provider }, 'rotation step failed');
        results.push({ kind: p.item.kind, connection: p.item.connection, provider: p.item.provider, environment: p.item.environment, outcome: 'failed', detail: 'internal error (logged)' });
      }
    }
    if (!opts.connection) results.push(...(await clientSecrets(opts.actor)));
    const notices = opts.manual && !opts.connection && deps.expiry ? await deps.expiry.check() : 0;
    return { dry_run: false, results, notices_sent: notices };
  }

  return {
    /** GET /v1/rotations: the credentials the schedules cover (or only those due), oldest first per kind. */
    async list(opts: { due?: boolean; limit?: number } = {}): Promise<RotationItem[]> {
      return (await plan({ due: opts.due ?? false, limit: opts.limit })).map((p) => p.item);
    },

    /**
     * One rotation pass (POST /v1/rotations/run, `warrant rotate --due`, the scheduler). Runs one
     * at a time across instances: a manual pass waits up to 30 s for a running one, the scheduler's
     * skips. `connection`: rotate that connection's credential now, whatever its age.
     */
    async run(opts: { dryRun?: boolean; connection?: string; actor?: string; scheduled?: boolean } = {}): Promise<RunReport> {
      if (opts.connection && !(await store.connections.get(opts.connection))) throw notFound(`connection ${opts.connection}`);
      const args = { dryRun: opts.dryRun ?? false, connection: opts.connection, actor: opts.actor ?? 'admin', manual: !opts.scheduled };
      if (args.dryRun) return pass(args);
      try {
        return await deps.locks.withLock(PASS_LOCK, { ttlMs: 60_000, waitMs: opts.scheduled ? 0 : 30_000 }, () => pass(args));
      } catch (err) {
        if (!(err instanceof LockTimeoutError)) throw err;
        if (opts.scheduled) return { dry_run: false, results: [], notices_sent: 0 };
        throw new WarrantError('unavailable', 'another rotation pass is running on some instance; try again', { retry_after: 30 }, { cause: err });
      }
    },

    /** GET /v1/rotations/{connection}: the connection's credential schedule, and a pending key's public half for upload. */
    async status(connection: string): Promise<RotationStatus> {
      const row = await store.connections.get(connection);
      if (!row) throw notFound(`connection ${connection}`);
      const [p] = await plan({ due: false, connection });
      const provider = catalog.get(row.provider);
      if (!p || !provider) {
        return { kind: provider?.auth === 'jwt_bearer' ? 'private_key' : 'refresh_token', connection, provider: row.provider, environment: row.environment, owner: row.owner, issued_at: iso(row.credential_issued_at), due_at: null, state: 'current', action: 'none' };
      }
      const out: RotationStatus = { ...p.item };
      if (p.item.state !== 'pending' || !p.rot?.public_key) return out;
      out.pending_key = { ...(await publicKeyView(p.rot.public_key, provider)), since: new Date(p.rot.started_at ?? p.rot.updated_at).toISOString() };
      return out;
    },
  };
}

export type Rotations = ReturnType<typeof createRotations>;
