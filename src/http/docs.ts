import type { FastifyInstance } from 'fastify';
import swaggerUi from '@fastify/swagger-ui';

/**
 * Nothing is loaded from anywhere but Warrant: the page, its scripts and styles come from the
 * assets @fastify/swagger-ui ships (swagger-ui-dist), the document from `/docs/json`. Inline
 * styles stay allowed (Swagger UI sets some); inline scripts do not.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** `/docs`: the OpenAPI document rendered by Swagger UI, served locally. Open, like /openapi.json. */
export async function docsRoutes(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: DOCS_CSP,
    theme: { title: 'Warrant API reference' },
    // BaseLayout: no top bar, whose box loads a document from any URL.
    uiConfig: { layout: 'BaseLayout', deepLinking: true, defaultModelsExpandDepth: 0, displayRequestDuration: true },
    validatorUrl: false,
  });
}
