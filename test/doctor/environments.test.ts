import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadCatalog, providerSchema, type ProviderInput } from '../../src/providers/index.ts';
import { environmentFindings } from '../../src/doctor/environments.ts';

const define = (environments: ProviderInput['environments']) =>
  providerSchema.parse({ id: 'acme', auth: 'oauth2', client_id: 'acme-app', environments });

test("an environment's token endpoint on another environment's identity host is an error", () => {
  const findings = environmentFindings(
    define({
      production: { issuer: 'https://login.acme.example', authorization_url: 'https://login.acme.example/authorize', token_url: 'https://test.acme.example/token', api_base_url: 'https://api.acme.example' },
      sandbox: { issuer: 'https://test.acme.example', authorization_url: 'https://test.acme.example/authorize', token_url: 'https://test.acme.example/token', api_base_url: 'https://api.test.acme.example' },
    }),
  );
  const onOther = findings.find((f) => f.subject === 'acme/production' && /token_url .* is on sandbox's identity host test\.acme\.example/.test(f.detail));
  assert.equal(onOther?.verdict, 'error', JSON.stringify(findings));
  assert.match(onOther.fix, /environments\.production\.token_url/);
});

test('a production environment on a sandbox-looking host, and a sandbox environment on the production API, are errors', () => {
  const findings = environmentFindings(
    define({
      production: { authorization_url: 'https://auth.acme.example/a', token_url: 'https://auth.acme.example/t', api_base_url: 'https://sandbox-api.acme.example/v1' },
      sandbox: { authorization_url: 'https://auth.acme.example/a', token_url: 'https://auth.acme.example/t', api_base_url: 'https://sandbox-api.acme.example/v1' },
    }),
  );
  assert.ok(findings.some((f) => f.verdict === 'error' && f.subject === 'acme/production' && /api_base_url .* looks like a sandbox\/test host/.test(f.detail)), JSON.stringify(findings));
  assert.ok(findings.some((f) => f.verdict === 'error' && f.subject === 'acme/sandbox' && /same API host as production/.test(f.detail)), JSON.stringify(findings));
});

test('shared OAuth hosts with distinct API hosts (QuickBooks) and every built-in entry raise nothing', () => {
  assert.deepEqual(
    environmentFindings(
      define({
        production: { authorization_url: 'https://appcenter.acme.example/connect', token_url: 'https://oauth.acme.example/token', api_base_url: 'https://api.acme.example' },
        sandbox: { authorization_url: 'https://appcenter.acme.example/connect', token_url: 'https://oauth.acme.example/token', api_base_url: 'https://sandbox-api.acme.example' },
      }),
    ),
    [],
  );
  for (const provider of loadCatalog().values()) assert.deepEqual(environmentFindings(provider), [], provider.id);
});
