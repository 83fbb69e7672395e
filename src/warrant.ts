// The composition root: every layer is built here, once, from the config.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/index.ts';
import {
  fileKeyRingSource,
  hashSecret,
  loadOrCreateKeyFile,
  parseKeyRing,
  randomToken,
  staticKeyRing,
  type KeyRingSource,
} from './crypto/index.ts';
import { createStore, type Store } from './store/index.ts';
import { loadCatalog, type Provider } from './providers/index.ts';
import { buildApp } from './http/app.ts';
import { createLogger } from './http/logger.ts';
import { createMetrics } from './http/metrics.ts';

export interface Warrant {
  config: Readonly<Config>;
  app: FastifyInstance;
  store: Store;
  catalog: Map<string, Provider>;
  logger: Logger;
  /** Set only on the first start without WARRANT_ADMIN_TOKEN: shown once, never stored in the clear. */
  generatedAdminToken?: string;
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface WarrantOptions {
  logger?: Logger;
  now?: () => number;
  /** Called once with a message for the operator's eyes (key generated, admin token …). */
  notice?: (message: string) => void;
}

export function keyRingFor(config: Config, notice: (m: string) => void): KeyRingSource {
  if (config.masterKey) return staticKeyRing(parseKeyRing(config.masterKey));
  const { created, path } = loadOrCreateKeyFile(config.dataDir);
  if (created) {
    notice(
      `WARNING: no WARRANT_MASTER_KEY set; generated one into ${path} (mode 0600). ` +
        'Anyone who can read that file and the database can read every token: back it up apart from the data, ' +
        'or set WARRANT_MASTER_KEY.',
    );
  }
  return fileKeyRingSource(path);
}

const ADMIN_HASH = 'admin_token_hash';

async function adminTokenHash(store: Store, config: Config, now: number): Promise<{ hash: string; generated?: string }> {
  if (config.adminToken) return { hash: hashSecret(config.adminToken) };
  const stored = await store.settings.get(ADMIN_HASH);
  if (stored) return { hash: stored };
  const token = randomToken(32, 'wat_');
  if (await store.settings.setIfAbsent(ADMIN_HASH, hashSecret(token), now)) return { hash: hashSecret(token), generated: token };
  return { hash: (await store.settings.get(ADMIN_HASH))! }; // another instance won the race
}

export async function createWarrant(config: Readonly<Config>, opts: WarrantOptions = {}): Promise<Warrant> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const notice = opts.notice ?? ((m: string) => logger.warn(m));
  const now = opts.now ?? Date.now;
  const catalog = loadCatalog(config.providersPath);
  const store = await createStore({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    ring: keyRingFor(config, notice),
    now,
  });
  const admin = await adminTokenHash(store, config, now());
  const metrics = createMetrics();
  const app = await buildApp({
    logger,
    metrics,
    catalog,
    ping: () => store.ping(),
    adminTokenHash: () => admin.hash,
  });

  return {
    config,
    app,
    store,
    catalog,
    logger,
    generatedAdminToken: admin.generated,
    async listen() {
      return app.listen({ host: config.host, port: config.port });
    },
    async close() {
      await app.close();
      await store.close();
    },
  };
}
