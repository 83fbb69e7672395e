import { createHmac } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import { safeEqual } from '../crypto/index.ts';
import type { OwnersRepo } from '../store/index.ts';
import type { ClientAgents } from './agents.ts';
import { documentHost } from './cimd.ts';
import type { LoginCodes } from './login-codes.ts';
import { authzPaths } from './options.ts';
import { consentPage, loginPage, sendPage } from './pages.ts';

// The login + consent step. oidc-provider sends the browser to /oauth2/interaction/{uid} (the
// interaction is bound to a cookie it set); the owner signs in with a login code, then sees who
// asks for what and allows or denies. Every POST carries a CSRF token bound to the interaction
// (an HMAC of its uid under a key sealed in the store), compared in constant time.

export interface InteractionDeps {
  provider: Provider;
  loginCodes: LoginCodes;
  clientAgents: ClientAgents;
  owners: Pick<OwnersRepo, 'get'>;
  /** Key of the CSRF tokens (shared by every instance, so any of them can check a form). */
  csrfKey: string;
  logger: Logger;
  /** Longest a form body may take to arrive. */
  bodyTimeoutMs?: number;
}

const FORM_LIMIT_BYTES = 8 * 1024;

/** Reads an urlencoded form with a size cap and a deadline. */
function readForm(req: IncomingMessage, timeoutMs: number): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return reject(new FormError(415, 'the form must be application/x-www-form-urlencoded'));
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new FormError(408, 'the form took too long to arrive'));
    }, timeoutMs);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > FORM_LIMIT_BYTES) {
        clearTimeout(timer);
        req.destroy();
        reject(new FormError(413, 'the form is too large'));
      } else chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

class FormError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

const asList = (v: unknown): string[] => (v === undefined ? [] : ([] as unknown[]).concat(v).filter((x): x is string => typeof x === 'string'));

export function createInteractions(deps: InteractionDeps) {
  const { provider, loginCodes, clientAgents } = deps;
  const bodyTimeoutMs = deps.bodyTimeoutMs ?? 10_000;
  const csrfOf = (uid: string) => createHmac('sha256', deps.csrfKey).update(`authz-interaction:${uid}`).digest('base64url');

  async function show(req: IncomingMessage, res: ServerResponse, uid: string, error?: { status: number; message: string; owner?: string }): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    const client = await provider.Client.find(String(params.client_id));
    const base = `${authzPaths.interaction}/${encodeURIComponent(uid)}`;
    const csrf = csrfOf(uid);
    // A metadata document client (cimd.ts) is known by the host that publishes it, whatever name it gives.
    const publisher = documentHost(client);
    if (prompt.name === 'login' || !session?.accountId) {
      const name = client?.clientName ?? String(params.client_id);
      const html = loginPage({ action: `${base}/login`, csrf, clientName: publisher ? `${name} (${publisher})` : name, owner: error?.owner, error: error?.message });
      return sendPage(res, error?.status ?? 200, 'Sign in to Warrant', html);
    }
    const html = consentPage({
      approve: `${base}/consent`,
      deny: `${base}/deny`,
      csrf,
      owner: session.accountId,
      clientId: String(params.client_id),
      clientName: client?.clientName,
      clientUri: client?.clientUri,
      publisher,
      // The device flow (RFC 8628) sends nothing back: the device polls for its tokens.
      redirectUri: typeof params.redirect_uri === 'string' ? params.redirect_uri : 'nowhere: the device that showed you the code polls for its tokens',
      scopes: typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [],
      resources: asList(params.resource),
    });
    return sendPage(res, error?.status ?? 200, 'Allow access?', html);
  }

  async function login(req: IncomingMessage, res: ServerResponse, uid: string, form: URLSearchParams): Promise<void> {
    const owner = (form.get('owner') ?? '').trim();
    const code = form.get('code') ?? '';
    // One answer for every failure: wrong code, used, expired, unknown or offboarded owner.
    const owned = owner && owner.length <= 320 ? (await loginCodes.redeem(owner, code)) && (await deps.owners.get(owner))?.status === 'active' : false;
    if (!owned) return show(req, res, uid, { status: 400, message: 'That owner and login code do not match a valid code.', owner });
    await provider.interactionFinished(req, res, { login: { accountId: owner } }, { mergeWithLastSubmission: false });
  }

  async function consent(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { prompt, params, session, grantId } = await provider.interactionDetails(req, res);
    const owner = session?.accountId;
    if (prompt.name !== 'consent' || !owner) throw new FormError(400, 'this request is not waiting for consent');
    const clientId = String(params.client_id);
    const client = await provider.Client.find(clientId);
    if (!client) throw new FormError(400, 'the client is gone');
    // The client becomes (or stays) an agent of the owner before the grant exists.
    const publisher = documentHost(client);
    const name = publisher ? (client.clientName ? `${client.clientName.slice(0, 40)} (${publisher})` : publisher) : client.clientName;
    const agentId = await clientAgents.ensure({ clientId, name }, owner);
    const grant = (grantId ? await provider.Grant.find(grantId) : undefined) ?? new provider.Grant({ accountId: owner, clientId });
    const d = prompt.details as ConsentDetails;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    // A resource asked with no scope is granted all the same (its token has no scope).
    for (const r of asList(params.resource)) if (!grant.resources?.[r]) grant.addResourceScope(r, '');
    const saved = await grant.save();
    // Remembered for the owner's next browser sessions (provider.ts, loadExistingGrant): all this grant holds.
    const resources = Object.fromEntries(Object.entries(grant.resources ?? {}).map(([r, scopes]) => [r, scopes.split(' ').filter(Boolean)]));
    await clientAgents.remember(clientId, owner, agentId, { scopes: (grant.openid?.scope ?? '').split(' ').filter(Boolean), resources });
    await provider.interactionFinished(req, res, { consent: { grantId: saved } }, { mergeWithLastSubmission: true });
  }

  async function deny(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the owner denied the request' }, { mergeWithLastSubmission: false });
  }

  /** Handles `/oauth2/interaction/{uid}[/login|/consent|/deny]`; false when the path is not one of them. */
  return async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const prefix = `${authzPaths.interaction}/`;
    if (!path.startsWith(prefix)) return false;
    const [rawUid, action, ...rest] = path.slice(prefix.length).split('/');
    if (!rawUid || rest.length > 0) return false;
    const uid = decodeURIComponent(rawUid);
    const known = action === undefined ? req.method === 'GET' : req.method === 'POST' && ['login', 'consent', 'deny'].includes(action);
    if (!known) return false;
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== uid) throw new Error('interaction mismatch');
    } catch {
      sendPage(res, 400, 'Warrant', '<h1>This sign-in request has expired or is not yours.</h1><p>Start again from the application.</p>');
      return true;
    }
    try {
      if (action === undefined) {
        await show(req, res, uid);
        return true;
      }
      const form = await readForm(req, bodyTimeoutMs);
      const sent = form.get('csrf') ?? '';
      if (!sent || !safeEqual(sent, csrfOf(uid))) {
        sendPage(res, 403, 'Warrant', '<h1>This form is not valid.</h1><p>Reload the page and try again.</p>');
        return true;
      }
      if (action === 'login') await login(req, res, uid, form);
      else if (action === 'consent') await consent(req, res);
      else await deny(req, res);
    } catch (err) {
      if (err instanceof FormError) {
        if (!res.headersSent) sendPage(res, err.status, 'Warrant', `<h1>${err.status === 400 ? 'Bad request' : 'Request refused'}</h1><p>${err.message}</p>`);
        return true;
      }
      throw err;
    }
    return true;
  };
}
