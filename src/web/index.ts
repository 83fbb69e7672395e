// The admin dashboard at /ui (docs/dashboard.md): server-rendered pages over the admin API.
export { webRoutes, type WebDeps } from './routes.ts';
export { createUiSessions, sessionCookie, SESSION_COOKIE, SESSION_TTL_MS, type UiSessions } from './session.ts';
