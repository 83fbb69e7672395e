import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startLifecycle } from '../helpers/lifecycle.ts';
import { ADMIN_TOKEN } from '../helpers/app.ts';

// The browser walk-through in headless Chromium (Debian's package, driven by
// playwright-core; never a browser download): sign in on /ui, open a sandbox connect link and
// complete it, see the connection, create and revoke an agent, see the audit entries. A screenshot
// of each step lands in test-artifacts/browser/.

const CHROMIUM = process.env.WARRANT_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'browser');
const absent = !existsSync(CHROMIUM);
// In CI a missing browser is a failure, not a skip.
const skip = absent && !process.env.CI ? `${CHROMIUM} not found: install Debian's chromium package to run the browser test` : false;
if (skip) console.log(`# NOTE: browser test skipped: ${skip}`);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('browser: sign in, connect the sandbox, see it, create and revoke an agent, read the audit', { skip, timeout: 60_000 }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // A fixed port: the connect link and the IdP's redirect must name where the browser reaches Warrant.
  const env = await startLifecycle({ env: { WARRANT_PORT: String(port), WARRANT_PUBLIC_URL: base } });
  let browser: Browser | undefined;
  let step = 0;
  const shot = async (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${String(++step).padStart(2, '0')}-${name}.png`), fullPage: true });
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    // The revoke button asks in a dialog (ui.js): accept it.
    page.on('dialog', (d) => void d.accept());

    // Sign in.
    await page.goto(`${base}/`);
    assert.match(page.url(), /\/ui\/login$/);
    await page.getByLabel('Admin token or admin key').fill(ADMIN_TOKEN);
    await shot(page, 'sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/ui\/connections$/);
    assert.match(await page.locator('.who').innerText(), /Signed in as admin, role admin/);

    // A connect link for the sandbox, opened and completed in the browser.
    await page.getByText('New connection').click();
    await page.locator('#c-provider').selectOption('sandbox');
    await page.locator('#c-owner').fill('browser@example.com');
    await page.locator('#c-scopes').fill('items:read items:write');
    await page.getByRole('button', { name: 'Create connect link' }).click();
    const link = page.locator('#connect-url');
    const connectUrl = await link.getAttribute('href');
    assert.ok(connectUrl?.startsWith(base), connectUrl ?? 'no connect_url');
    const session = (await page.locator('#session-id').innerText()).trim();
    await shot(page, 'connect-link');
    await link.click();
    // The hosted connect page (when there is one) has a "Continue to <Provider>" button; the
    // sandbox IdP approves on arrival or shows an Approve button.
    const onward = page.getByRole('button', { name: /^(Continue to |Approve$)/ });
    for (let i = 0; i < 2; i++) {
      await page.waitForLoadState();
      if (new URL(page.url()).port === String(port) && !(await onward.count())) break;
      if (await onward.count()) {
        await shot(page, 'consent');
        await onward.first().click();
      } else {
        await page.waitForURL((u) => u.port === String(port), { timeout: 10_000 });
      }
    }
    await page.waitForURL((u) => u.port === String(port) && !u.pathname.startsWith('/connect/'));
    await shot(page, 'connected');
    const status = (await env.warrant.connect.getSession(session)) as { status: string; connection_id?: string };
    assert.equal(status.status, 'completed', JSON.stringify(status));
    const connection = status.connection_id!;

    // The connection on the dashboard.
    await page.goto(`${base}/ui/connections?owner=browser%40example.com`);
    const row = page.locator('tr', { has: page.locator(`a[href="/ui/connections/${connection}"]`) });
    await assert.doesNotReject(row.waitFor());
    assert.match(await row.innerText(), /active/);
    await shot(page, 'connections');

    // Create an agent: the key is shown once.
    await page.goto(`${base}/ui/agents`);
    await page.getByText('New agent').click();
    await page.locator('#a-name').fill('browser-agent');
    await page.locator('#a-owner').fill('browser@example.com');
    await page.locator('#g0-connection').selectOption(connection);
    await page.locator('#g0-scopes').fill('items:read');
    await page.getByRole('button', { name: 'Create agent' }).click();
    const key = await page.getByLabel('API key of browser-agent').inputValue();
    assert.match(key, /^wrt_/);
    await shot(page, 'agent-created');
    const agentId = (await page.locator('a[href^="/ui/agents/agt_"]').first().getAttribute('href'))!.split('/').pop()!;

    // Revoke it (the dialog is accepted), and the key is nowhere on the agents page.
    await page.goto(`${base}/ui/agents/${agentId}`);
    assert.ok(!(await page.content()).includes(key));
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('heading', { name: 'Agent browser-agent revoked' }).waitFor();
    await shot(page, 'agent-revoked');

    // The audit timeline has all of it, newest first, and the chain verifies.
    await page.goto(`${base}/ui/audit`);
    const text = await page.locator('main').innerText();
    assert.match(text, /Chain verified/);
    for (const type of ['agent.revoked', 'agent.created', 'connection.created']) assert.ok(text.includes(type), `audit shows ${type}`);
    assert.ok(text.indexOf('agent.revoked') < text.indexOf('agent.created'), 'newest first');
    await shot(page, 'audit');
  } finally {
    await browser?.close();
    await env.cleanup();
  }
});
