import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { newRequestId } from './request-id.ts';
import { registerOpenApi } from './openapi.ts';
import { docsRoutes } from './docs.ts';
import type { Logger } from 'pino';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { installProblemHandlers } from './problems.ts';
import { clientErrorHandler, frameworkErrors, installStrictJsonParser } from './bad-input.ts';
import { createAdminGuard, type AdminAuthenticator, type AdminAuthLimit } from './auth.ts';
import type { Metrics } from './metrics.ts';
import { healthRoutes } from './routes/health.ts';
import { providerRoutes } from './routes/providers.ts';
import type { Provider } from '../providers/index.ts';

export interface AppDeps {
  logger: Logger;
  metrics: Metrics;
  catalog: Map<string, Provider>;
  /** Is the store reachable? Throws when not. */
  ping(): Promise<void>;
  /** Is the audit queue taking calls (writes not failing, nothing unwritten past the deadline)? /readyz answers 503 when not. */
  auditAccepting?(): boolean;
  /** Is this the admin token? (re-read from the store, so a reset applies without a restart) */
  verifyAdminToken(token: string): boolean | Promise<boolean>;
  /**
   * Who a bearer is on the admin API, admin keys included (admin/keys.ts); when set, used instead
   * of `verifyAdminToken`.
   */
  authenticateAdmin?: AdminAuthenticator;
  /** Failed admin authentications per client address (default: config/defaults.ts). */
  adminAuthLimit?: AdminAuthLimit;
  /** WARRANT_METRICS_TOKEN: when set, `/metrics` wants it as a bearer token; unset, `/metrics` is open. */
  metricsToken?: string;
  /** Largest JSON body accepted, in bytes. */
  bodyLimitBytes?: number;
  /** Environment for `${env:NAME}` references in provider definitions (default process.env): which clients are configured. */
  env?: NodeJS.ProcessEnv;
  /** Extra route plugins from later layers (connections, agents …). */
  routes?: ((app: FastifyInstance, ctx: RouteContext) => Promise<void> | void)[];
  /** Handlers that may take a request on the raw node:http server before Fastify sees it (the proxy). */
  rawRoutes?: ((req: IncomingMessage, res: ServerResponse) => boolean)[];
}

export interface RouteContext {
  requireAdmin: ReturnType<typeof createAdminGuard>;
}

const registered = new WeakMap<FastifyInstance, { method: string; url: string }[]>();

/** Every route of an app built by buildApp, as registered (the admin role test walks them all). */
export const registeredRoutes = (app: FastifyInstance): readonly { method: string; url: string }[] => registered.get(app) ?? [];

/** Builds the Fastify app without listening: tests drive it with inject() or listen on port 0. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimitBytes ?? 1 << 20,
    genReqId: newRequestId,
    requestIdHeader: false,
    trustProxy: false,
    routerOptions: { ignoreTrailingSlash: true },
    clientErrorHandler,
    frameworkErrors,
    serverFactory: (handler) =>
      createServer((req, res) => {
        for (const route of deps.rawRoutes ?? []) if (route(req, res)) return;
        handler(req, res);
      }),
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installProblemHandlers(app);
  installStrictJsonParser(app);

  await registerOpenApi(app);

  // A callback hook, not an async one: it runs on every request, proxied calls included.
  app.addHook('onResponse', (request, reply, done) => {
    deps.metrics.httpRequests.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });

  const routeList: { method: string; url: string }[] = [];
  registered.set(app, routeList);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routeList.push({ method, url: route.url });
  });

  const ctx: RouteContext = { requireAdmin: createAdminGuard(deps.authenticateAdmin ?? deps.verifyAdminToken, deps.adminAuthLimit) };

  await app.register(async (scope) => healthRoutes(scope, deps));
  await app.register(async (scope) => providerRoutes(scope, { ...ctx, catalog: deps.catalog, env: deps.env }));
  for (const routes of deps.routes ?? []) await app.register(async (scope) => routes(scope, ctx));

  // Open on purpose: the document describes routes and schemas, holds no data and no secret.
  app.get(
    '/openapi.json',
    {
      schema: {
        tags: ['reference'],
        summary: 'This OpenAPI 3.1 document',
        description: 'Every route of this Warrant with its schemas, examples and problem answers; rendered at `/docs`. Open: it holds no data and no secret.',
        otherResponses: { 200: { description: 'The OpenAPI document', content: { 'application/json': { schema: { type: 'object' } } } } },
      },
    },
    async () => app.swagger(),
  );
  await app.register(docsRoutes);
  return app;
}
