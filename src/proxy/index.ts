// The proxy's pure building blocks: where a call goes, whether a scope allows it, and what the
// upstream's answer means.
export {
  decodeFully,
  foldBackslashes,
  resolveTarget,
  resolveTargetWithPath,
  type ResolvedTarget,
  type TargetOptions,
} from './target.ts';
export { decodeSegment, findGrantedScope, globMatches, globSegments, methodMatches, pathSegments, ruleMatches } from './policy.ts';
export {
  classifyUpstream,
  headerValue,
  matchesPattern,
  needsBody,
  parseBearerChallenge,
  parseChallenges,
  type BearerChallenge,
  type Challenge,
  type UpstreamAnswer,
  type UpstreamClass,
} from './detect.ts';
export { API_HOST_HEADER, chooseApiHost, createApiBases, routeCall, type ApiBases, type ApiHosts, type Route } from './hosts.ts';
export { createForwarder, defaultProxySettings, type Forwarder, type ProxyAgent, type ProxyRequest, type ProxyResponse, type ProxySettings } from './forward.ts';
export { createUpstreams, type Upstreams } from './upstream.ts';
