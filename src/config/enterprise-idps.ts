import { z } from 'zod';

// WARRANT_ENTERPRISE_IDPS: the enterprise IdPs whose Identity Assertion JWT Authorization Grants
// (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant; MCP SEP-990) Warrant's authorization
// server accepts (src/authz/id-jag.ts). A JSON array, wire names as an admin writes them:
//   [{"issuer": "https://acme.okta.com", "jwks_uri": "https://acme.okta.com/oauth2/v1/keys",
//     "owner_claim": "email", "clients": ["wcl_…"]}]

/** One trusted enterprise IdP, as the authorization server uses it. */
export interface EnterpriseIdp {
  /** The `iss` of its ID-JAGs, compared exactly. */
  issuer: string;
  /** Where its signing keys are published (fetched with a deadline, cached). */
  jwksUri: string;
  /** The claim naming the Warrant owner: `email` (default) or `sub`. */
  ownerClaim: 'email' | 'sub';
  /** Warrant client ids it may grant to; unset: any confidential client. */
  clients?: readonly string[];
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** https, or plain http to this machine only (a local IdP in development and tests). */
function keyUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.username || url.password || url.hash) return 'must carry no credentials and no fragment';
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname))) return undefined;
  return 'must be an https URL (plain http only on a loopback host)';
}

const entry = z
  .object({
    issuer: z.string({ message: 'is required (a string)' }).min(1, { message: 'is required' }).max(2048),
    jwks_uri: z.string({ message: 'is required (a string)' }).superRefine((v, ctx) => {
      const problem = keyUrlProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    owner_claim: z.enum(['email', 'sub'], { message: 'must be "email" or "sub"' }).default('email'),
    clients: z.array(z.string().min(1).max(256)).min(1, { message: 'must list at least one client id (or be left out)' }).optional(),
  })
  .strict();

const list = z.array(entry, { message: 'must be a JSON array of IdPs' }).superRefine((idps, ctx) => {
  const seen = new Set<string>();
  idps.forEach((idp, i) => {
    if (seen.has(idp.issuer)) ctx.addIssue({ code: 'custom', path: [i, 'issuer'], message: 'names an issuer already listed' });
    seen.add(idp.issuer);
  });
});

/**
 * The variable's schema: a JSON array of IdPs. A problem names where it is (`[0].jwks_uri: …`)
 * and never repeats the value.
 */
export const enterpriseIdpsSchema = z.string().transform((raw, ctx): EnterpriseIdp[] => {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a JSON array of {issuer, jwks_uri, owner_claim?, clients?}' });
    return z.NEVER;
  }
  const parsed = list.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const message = issue.code === 'unrecognized_keys' ? `unknown member ${issue.keys.join(', ')}` : issue.message;
    ctx.addIssue({ code: 'custom', message: where ? `${where.replace(/^\./, '')}: ${message}` : message });
    return z.NEVER;
  }
  return parsed.data.map((i) => ({ issuer: i.issuer, jwksUri: i.jwks_uri, ownerClaim: i.owner_claim, ...(i.clients ? { clients: i.clients } : {}) }));
});
