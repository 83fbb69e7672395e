// Agents: identities with their own API key and narrow grants on connections (DESIGN.md, "agents/").
export { createAgentService, agentDefaults, type AgentService, type AgentServiceDeps, type CreateAgentInput } from './service.ts';
export { grantFor, type AgentView, type GrantView, type AuthenticatedAgent, type AgentGrant } from './view.ts';
export { API_KEY_PREFIX, parseApiKey } from './keys.ts';
export { ORPHAN_REASONS, type OrphanReason, type AgentStatusFilter } from './repo.ts';
export { createOrphanSweep, orphanSweepDefaults, type OrphanPolicy, type OrphanSweep, type OrphanSweepOptions, type SweepReport } from './orphans.ts';
export { narrowGrants, type UpdateAgentInput } from './update.ts';
export { createScopeReview, reviewGrant, parseSince, type ScopeReview, type ScopeReviewReport, type GrantReview, type AgentReview } from './review.ts';
export type { ShareView, Shares } from './shares.ts';
export { createOffboarding, offboardingDefaults, type Offboarding, type OffboardingDeps, type OffboardReport, type OffboardedConnection, type OffboardVerification, type OwnerView } from './offboarding.ts';
export { createKeyInvalidations, keyInvalidationDefaults, type KeyInvalidations } from './invalidation.ts';
