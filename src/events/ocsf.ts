import type { AuditEntry } from './audit.ts';

// Audit entries as OCSF events (Open Cybersecurity Schema Framework, https://schema.ocsf.io) for
// SIEMs: calls through Warrant (proxy, MCP tools, token issuance, admin API changes) as API
// Activity (class 6003), lifecycle of agents, owners, credentials and admin keys as Account Change
// (class 3001). The mapping table is in docs/audit.md ("OCSF"); the tests validate every mapped
// event against the JSON Schema of its class generated from the OCSF repository
// (test/fixtures/ocsf/). Nothing is dropped: the entry as Warrant wrote it rides in `unmapped`.

export const OCSF_VERSION = '1.8.0';

const API_ACTIVITY = { class_uid: 6003, class_name: 'API Activity', category_uid: 6, category_name: 'Application Activity' } as const;
const ACCOUNT_CHANGE = { class_uid: 3001, class_name: 'Account Change', category_uid: 3, category_name: 'Identity & Access Management' } as const;

const API_ACTIVITIES: Record<number, string> = { 1: 'Create', 2: 'Read', 3: 'Update', 4: 'Delete', 99: 'Other' };
const ACCOUNT_ACTIVITIES: Record<number, string> = { 1: 'Create', 2: 'Enable', 3: 'Password Change', 5: 'Disable', 6: 'Delete', 7: 'Attach Policy', 8: 'Detach Policy', 99: 'Other' };
const SEVERITIES: Record<number, string> = { 1: 'Informational', 2: 'Low', 3: 'Medium', 4: 'High' };

type Kind = 'api' | 'account';

/** Event types whose class and activity are not read from their name (the fallback below). */
const TABLE: Record<string, { kind: Kind; activity: number }> = {
  'agent.created': { kind: 'account', activity: 1 },
  'agent.reactivated': { kind: 'account', activity: 2 },
  'agent.suspended': { kind: 'account', activity: 5 },
  'agent.revoked': { kind: 'account', activity: 6 },
  'agent.narrowed': { kind: 'account', activity: 8 },
  'owner.provisioned': { kind: 'account', activity: 1 },
  'owner.reactivated': { kind: 'account', activity: 2 },
  'owner.offboarded': { kind: 'account', activity: 5 },
  'owner.deprovisioned': { kind: 'account', activity: 6 },
  'connection.created': { kind: 'account', activity: 1 },
  'connection.imported': { kind: 'account', activity: 1 },
  'connection.reconnected': { kind: 'account', activity: 1 },
  'connection.recovered': { kind: 'account', activity: 2 },
  'connection.revoked': { kind: 'account', activity: 6 },
  'connection.revocation_unverified': { kind: 'account', activity: 6 },
  'connection.shared': { kind: 'account', activity: 7 },
  'connection.unshared': { kind: 'account', activity: 8 },
  'rotation.completed': { kind: 'account', activity: 3 },
  'rotation.failed': { kind: 'account', activity: 3 },
  'admin_key.created': { kind: 'account', activity: 1 },
  'admin_key.revoked': { kind: 'account', activity: 6 },
  'authz.token_exchanged': { kind: 'api', activity: 1 },
  'authz.token_exchange_refused': { kind: 'api', activity: 1 },
  'authz.enterprise_grant': { kind: 'api', activity: 1 },
  'webhook.created': { kind: 'api', activity: 1 },
  'webhook.deleted': { kind: 'api', activity: 4 },
  'webhook.redelivered': { kind: 'api', activity: 3 },
  'mcp.server_registered': { kind: 'api', activity: 1 },
  'mcp.server_deleted': { kind: 'api', activity: 4 },
};

/** Lifecycle subjects: their events are Account Change unless the table says otherwise. */
const ACCOUNT_PREFIXES = ['agent.', 'owner.', 'connection.', 'credential.', 'rotation.', 'admin_key.', 'scim.'];
const VERBS: [RegExp, number][] = [
  [/\.(created|provisioned|imported)$/, 1],
  [/\.(reactivated|enabled|recovered)$/, 2],
  [/\.(rotated|completed)$/, 3],
  [/\.(suspended|offboarded|disabled)$/, 5],
  [/\.(revoked|deleted|deprovisioned)$/, 6],
];

const METHOD_ACTIVITY: Record<string, number> = { GET: 2, HEAD: 2, OPTIONS: 2, POST: 1, PUT: 3, PATCH: 3, DELETE: 4 };

function classify(e: AuditEntry): { kind: Kind; activity: number } {
  if (e.type === 'proxy.call') return { kind: 'api', activity: METHOD_ACTIVITY[String(e.data.method).toUpperCase()] ?? 99 };
  if (e.type === 'connection.refreshed') return { kind: 'account', activity: e.data.rotated === true ? 3 : 99 };
  const known = TABLE[e.type];
  if (known) return known;
  if (ACCOUNT_PREFIXES.some((p) => e.type.startsWith(p))) return { kind: 'account', activity: VERBS.find(([re]) => re.test(e.type))?.[1] ?? 99 };
  return { kind: 'api', activity: 99 };
}

const FAILURE = /(refused|failed|failing|error|unverified|indeterminate)$/;

function failed(e: AuditEntry): boolean {
  if (e.type === 'proxy.call') return Number(e.data.status) >= 400 || (e.data.code !== null && e.data.code !== undefined);
  if (e.type === 'mcp.tool_call') return e.data.outcome !== 'ok';
  if (e.type === 'connection.revoked') return e.data.verified === false;
  return FAILURE.test(e.type);
}

function severityOf(e: AuditEntry, failure: boolean): number {
  if (e.type === 'connection.revocation_unverified' || (e.type === 'connection.revoked' && e.data.verified === false)) return 4;
  if (/^(connection\.reauth_required|connection\.error|credential\.expiring|rotation\.failed|agent\.orphaned)$/.test(e.type)) return 3;
  return failure ? 2 : 1;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);

/** `agent:agt_1` → ['agent', 'agt_1']; `admin` → ['admin', 'admin']. */
function split(ref: string): [string, string] {
  const i = ref.indexOf(':');
  return i < 0 ? [ref, ref] : [ref.slice(0, i), ref.slice(i + 1)];
}

// OCSF user.type_id: 0 Unknown, 1 User, 2 Admin, 3 System, 4 Service, 99 Other.
const USER_TYPES: Record<string, [number, string]> = {
  owner: [1, 'User'],
  admin: [2, 'Admin'],
  admin_key: [2, 'Admin'],
  system: [3, 'System'],
  scheduler: [3, 'System'],
  agent: [4, 'Service'],
  anonymous: [0, 'Unknown'],
};

function userOf(ref: string): Record<string, unknown> {
  const [kind, id] = split(ref);
  const [typeId, type] = USER_TYPES[kind] ?? [99, kind];
  return { uid: id, type_id: typeId, type };
}

function actorOf(actor: string): Record<string, unknown> {
  const [kind, id] = split(actor);
  if (kind === 'client') return { app_uid: id };
  if (kind === 'system' || kind === 'scheduler') return { app_name: 'Warrant', user: userOf(actor) };
  return { user: userOf(actor) };
}

/** The Account Change target: the agent, owner or admin key; for a credential, its owner with the credential's id. */
function targetOf(e: AuditEntry): Record<string, unknown> {
  const [kind, id] = e.subject ? split(e.subject) : ['', ''];
  const owner = str(e.data.owner);
  if (kind === 'connection') return { ...(owner ? { uid: owner, type_id: 1, type: 'User' } : { uid: e.subject }), credential_uid: id };
  if (kind === 'agent' || kind === 'owner' || kind === 'admin_key') return { ...userOf(e.subject!), ...(str(e.data.name) ? { name: e.data.name } : {}) };
  if (owner) return { uid: owner, type_id: 1, type: 'User' };
  return e.subject ? { uid: e.subject } : userOf(e.actor);
}

function apiOf(e: AuditEntry): Record<string, unknown> {
  const requestId = str(e.data.request_id);
  const request = requestId ? { request: { uid: requestId } } : {};
  if (e.type === 'proxy.call') {
    return { operation: `${String(e.data.method).toUpperCase()} ${str(e.data.path) ?? '/'}`, service: { name: str(e.data.provider) ?? e.subject ?? 'proxy' }, ...request };
  }
  if (e.type === 'mcp.tool_call') return { operation: `tools/call ${str(e.data.tool) ?? ''}`.trim(), service: { name: str(e.data.server) ?? 'warrant' }, ...request };
  return { operation: e.type, service: { name: 'warrant' }, ...request };
}

/** The entry as one OCSF event of class 6003 or 3001 (OCSF 1.8.0). */
export function toOcsf(e: AuditEntry, product: { version?: string } = {}): Record<string, unknown> {
  const { kind, activity } = classify(e);
  const cls = kind === 'api' ? API_ACTIVITY : ACCOUNT_CHANGE;
  const activityName = (kind === 'api' ? API_ACTIVITIES : ACCOUNT_ACTIVITIES)[activity]!;
  const failure = failed(e);
  const severity = severityOf(e, failure);
  const requestId = str(e.data.request_id);
  const event: Record<string, unknown> = {
    ...cls,
    activity_id: activity,
    activity_name: activityName,
    type_uid: cls.class_uid * 100 + activity,
    type_name: `${cls.class_name}: ${activityName}`,
    severity_id: severity,
    severity: SEVERITIES[severity],
    status_id: failure ? 2 : 1,
    status: failure ? 'Failure' : 'Success',
    time: e.at,
    message: `${e.type} by ${e.actor}${e.subject ? ` on ${e.subject}` : ''}`,
    metadata: {
      version: OCSF_VERSION,
      product: { name: 'Warrant', vendor_name: 'Warrant', ...(product.version ? { version: product.version } : {}) },
      uid: e.id,
      sequence: e.seq,
      event_code: e.type,
      log_name: 'audit',
      logged_time: e.at,
      ...(requestId ? { correlation_uid: requestId } : {}),
    },
    actor: actorOf(e.actor),
    unmapped: { type: e.type, actor: e.actor, subject: e.subject, data: e.data, prev_hash: e.prev_hash, hash: e.hash },
  };
  const code = str(e.data.code) ?? str(e.data.error) ?? str(e.data.reason);
  if (code) event.status_detail = code;
  if (typeof e.data.duration_ms === 'number') event.duration = Math.round(e.data.duration_ms);
  const clientIp = str(e.data.client_ip);
  if (kind === 'api') {
    event.api = apiOf(e);
    // The client's address is kept only as its keyed HMAC (audit-hmac.ts): an endpoint uid, not an `ip`.
    event.src_endpoint = clientIp ? { uid: clientIp } : { name: 'unknown' };
    if (e.subject) event.resources = [{ uid: split(e.subject)[1], type: split(e.subject)[0] }];
    if (e.type === 'proxy.call') {
      const path = str(e.data.path) ?? '/';
      const host = str(e.data.host);
      event.http_request = { http_method: String(e.data.method).toUpperCase(), url: { path, ...(host ? { hostname: host } : {}) } };
      if (typeof e.data.status === 'number' && e.data.status > 0) {
        event.http_response = { code: e.data.status };
        event.status_code = String(e.data.status);
      }
      if (host) event.dst_endpoint = { hostname: host };
    }
    if (e.type === 'mcp.token_refused' && typeof e.data.status === 'number') event.status_code = String(e.data.status);
  } else {
    event.user = targetOf(e);
    if (clientIp) event.src_endpoint = { uid: clientIp };
  }
  return event;
}
