export { createTokenService, type TokenService, type FreshToken, type TokenRequest, type Clock } from './service.ts';
export { createScheduler, type Scheduler, type TickReport } from './scheduler.ts';
export { createConnectionService, viewOf, type ConnectionService, type ConnectionView, type ImportInput, type RevocationReport } from './connections.ts';
export { createConnectFlow, type ConnectFlow, type ConnectSessionInput } from './connect.ts';
export { createClientResolver, endpointsFor, fillTemplate, type ClientResolver } from './clients.ts';
export { skewMs, isFresh, refreshDueAt, backoffMs, type TimingSettings } from './timing.ts';
