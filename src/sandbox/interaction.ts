import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import { escapeHtml, sendHtml } from './http.ts';
import { sandboxDefaults } from './options.ts';

// The sandbox's own login + consent step. The user is `sandbox-user` (or the `login_hint`), who approves
// everything asked: automation (sandbox.authorize) POSTs to `…/approve`, a browser is approved
// on arrival (autoApprove) or clicks the button. Both go through interactionFinished, so the
// authorization endpoint resumes exactly as it would after a real login.

interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

export function createInteractionHandler(provider: Provider, autoApprove: boolean) {
  const prefix = `${sandboxDefaults.idpPath}/interaction/`;

  async function approve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { prompt, params, session, grantId } = await provider.interactionDetails(req, res);
    // `login_hint` picks another sandbox user (a second account at the same IdP), for tests of
    // what happens when someone consents with a different account.
    const hint = typeof params.login_hint === 'string' && /^[a-z0-9-]{1,32}$/.test(params.login_hint) ? params.login_hint : undefined;
    const accountId = hint ?? session?.accountId ?? sandboxDefaults.accountId;
    const clientId = String(params.client_id);
    const grant = (grantId ? await provider.Grant.find(grantId) : undefined) ?? new provider.Grant({ accountId, clientId });

    if (prompt.name === 'consent') {
      const d = prompt.details as ConsentDetails;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope);
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes);
    } else {
      // Login and consent in one step: grant what was asked so no consent prompt follows.
      const requested = typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];
      grant.addOIDCScope(requested);
      const resources = params.resource === undefined ? [] : ([] as unknown[]).concat(params.resource);
      for (const r of resources) if (typeof r === 'string') grant.addResourceScope(r, requested);
    }

    const result: InteractionResults = { consent: { grantId: await grant.save() } };
    if (prompt.name === 'login' || !session) result.login = { accountId };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  }

  async function deny(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'the sandbox user denied the request' },
      { mergeWithLastSubmission: false },
    );
  }

  async function page(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
    const { params } = await provider.interactionDetails(req, res);
    const base = `${prefix}${encodeURIComponent(uid)}`;
    sendHtml(
      res,
      200,
      `<!doctype html><meta charset="utf-8"><title>Warrant sandbox: approve access</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto}button{font-size:1rem;padding:.5rem 1.5rem;margin-right:.5rem}</style>
<h1>Approve access?</h1>
<p>Client <b>${escapeHtml(String(params.client_id))}</b> asks for <code>${escapeHtml(String(params.scope ?? ''))}</code>
as <b>${sandboxDefaults.accountId}</b>.</p>
<form method="post" action="${base}/approve"><button type="submit" autofocus>Approve</button></form>
<form method="post" action="${base}/deny"><button type="submit">Deny</button></form>`,
    );
  }

  /** Handles `/oauth/interaction/:uid[/approve|/deny]`; answers false when the path is not its own. */
  return async function handleInteraction(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    if (!path.startsWith(prefix)) return false;
    const [uid, action, ...rest] = path.slice(prefix.length).split('/');
    if (!uid || rest.length > 0) return false;
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== decodeURIComponent(uid)) throw new Error('interaction mismatch');
    } catch {
      sendHtml(res, 400, '<!doctype html><title>Sandbox</title><h1>This sign-in request has expired or is not yours.</h1><p>Start again from the application.</p>');
      return true;
    }
    if (action === undefined && req.method === 'GET') await (autoApprove ? approve(req, res) : page(req, res, uid));
    else if (action === 'approve' && req.method === 'POST') await approve(req, res);
    else if (action === 'deny' && req.method === 'POST') await deny(req, res);
    else return false;
    return true;
  }
}
