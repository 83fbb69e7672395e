// Agents: identities with their own API key and narrow grants on connections (DESIGN.md, "agents/").
export { createAgentService, agentDefaults, type AgentService, type AgentServiceDeps, type CreateAgentInput } from './service.ts';
export { grantFor, type AgentView, type GrantView, type AuthenticatedAgent, type AgentGrant } from './view.ts';
export { API_KEY_PREFIX, parseApiKey } from './keys.ts';
export type { OrphanReason, AgentStatusFilter } from './repo.ts';
export type { ShareView, Shares } from './shares.ts';
