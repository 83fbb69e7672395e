export { createTokenService, type TokenService, type FreshToken, type TokenRequest, type Clock } from './service.ts';
export { createScheduler, type Scheduler, type TickReport } from './scheduler.ts';
export { createConnectionService, viewOf, type ConnectionService, type ConnectionView, type ImportInput, type RevocationReport } from './connections.ts';
export { createConnectFlow, type ConnectFlow, type ConnectSessionInput, type CallbackOutcome } from './connect.ts';
export { createReconnects, RECONNECT_LINK_TTL_SECONDS, type Reconnects, type ReconnectLink } from './reconnect.ts';
export { cookieName, setCookieHeader, type BrowserCookie } from './browser.ts';
export { checkParams, createClientResolver, endpointsFor, fillTemplate, type ClientResolver } from './clients.ts';
export { skewMs, isFresh, refreshDueAt, backoffMs, type TimingSettings } from './timing.ts';
