import type { Adapter, AdapterConstructor, AdapterPayload } from 'oidc-provider';

// oidc-provider's bundled memory adapter is one LRU of 1000 entries shared by every provider in
// the process: a long demo would silently evict live refresh tokens and two sandboxes would share
// state. This one belongs to one sandbox, never evicts a live entry and starts no timers.

interface Entry {
  payload: AdapterPayload;
  /** ms since the epoch; the models check `exp` themselves, this only frees memory. */
  dropAt: number;
}

/** Expired entries are kept a while so the API can tell "expired" from "unknown". */
const retentionMs = 10 * 60_000;
const sweepEvery = 256;

class ModelStore {
  readonly entries = new Map<string, Entry>();
  readonly byGrant = new Map<string, Set<string>>();
  readonly byUid = new Map<string, string>();
  readonly byUserCode = new Map<string, string>();
  private writes = 0;

  upsert(id: string, payload: AdapterPayload, expiresIn: number | undefined): void {
    this.remove(id);
    const dropAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 + retentionMs : Infinity;
    this.entries.set(id, { payload: structuredClone(payload), dropAt });
    if (payload.grantId) {
      let ids = this.byGrant.get(payload.grantId);
      if (!ids) this.byGrant.set(payload.grantId, (ids = new Set()));
      ids.add(id);
    }
    if (payload.uid) this.byUid.set(payload.uid, id);
    if (payload.userCode) this.byUserCode.set(payload.userCode, id);
    if (++this.writes % sweepEvery === 0) this.sweep();
  }

  find(id: string | undefined): AdapterPayload | undefined {
    if (id === undefined) return undefined;
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.dropAt <= Date.now()) {
      this.remove(id);
      return undefined;
    }
    return structuredClone(entry.payload);
  }

  remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    const { grantId, uid, userCode } = entry.payload;
    if (grantId) {
      const ids = this.byGrant.get(grantId);
      ids?.delete(id);
      if (ids?.size === 0) this.byGrant.delete(grantId);
    }
    if (uid && this.byUid.get(uid) === id) this.byUid.delete(uid);
    if (userCode && this.byUserCode.get(userCode) === id) this.byUserCode.delete(userCode);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, entry] of this.entries) if (entry.dropAt <= now) this.remove(id);
  }
}

/** What the sandbox's own controls (revoke a user's grants, expire every token) read and change
 *  beyond oidc-provider's adapter interface, which cannot list or edit. */
export interface AdapterInspector {
  /** The live entries of one model (`Grant`, `AccessToken`, …): ids and copies of their payloads. */
  entries(model: string): { id: string; payload: AdapterPayload }[];
  /** Sets one entry's `exp` (seconds since the epoch); false when the entry is gone. */
  setExpiry(model: string, id: string, exp: number): boolean;
}

/** A fresh, empty storage for one provider instance: pass the result as `adapter`; its
 *  `inspector` reads and edits the same storage. */
export function createMemoryAdapter(): AdapterConstructor & { inspector: AdapterInspector } {
  const stores = new Map<string, ModelStore>();
  const storeFor = (name: string): ModelStore => {
    let store = stores.get(name);
    if (!store) stores.set(name, (store = new ModelStore()));
    return store;
  };
  const inspector: AdapterInspector = {
    entries(model) {
      const store = storeFor(model);
      return [...store.entries.keys()].flatMap((id) => {
        const payload = store.find(id);
        return payload ? [{ id, payload }] : [];
      });
    },
    setExpiry(model, id, exp) {
      const entry = storeFor(model).entries.get(id);
      if (!entry) return false;
      entry.payload.exp = exp;
      return true;
    },
  };

  return class SandboxMemoryAdapter implements Adapter {
    static readonly inspector = inspector;

    private readonly store: ModelStore;
    constructor(name: string) {
      this.store = storeFor(name);
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      this.store.upsert(id, payload, expiresIn);
    }
    async find(id: string): Promise<AdapterPayload | undefined> {
      return this.store.find(id);
    }
    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.store.find(this.store.byUid.get(uid));
    }
    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return this.store.find(this.store.byUserCode.get(userCode));
    }
    async consume(id: string): Promise<void> {
      const entry = this.store.entries.get(id);
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      this.store.remove(id);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      for (const id of [...(this.store.byGrant.get(grantId) ?? [])]) this.store.remove(id);
    }
  };
}
