import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cookieName, readCookie, setCookieHeader } from '../../src/tokens/browser.ts';

// The browser binding of connect sessions (security review, high 4): the cookie a start URL sets
// and the callback reads back.

test('the binding cookie: HttpOnly, SameSite=Lax, Secure only over https, deletable', () => {
  const c = { name: cookieName('cs_abc'), value: 'v'.repeat(43), maxAgeSeconds: 600 };
  assert.equal(setCookieHeader(c, true), `warrant_connect_cs_abc=${'v'.repeat(43)}; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure`);
  assert.doesNotMatch(setCookieHeader(c, false), /Secure/);
  assert.match(setCookieHeader({ ...c, value: '', maxAgeSeconds: 0 }, true), /^warrant_connect_cs_abc=; Path=\/; Max-Age=0;/);
});

test('readCookie finds its cookie among others, and nothing in a look-alike name', () => {
  const header = 'a=1; warrant_connect_cs_abcd=nope; warrant_connect_cs_abc=yes; b=2';
  assert.equal(readCookie(header, 'warrant_connect_cs_abc'), 'yes');
  assert.equal(readCookie(header, 'warrant_connect_cs_zzz'), undefined);
  assert.equal(readCookie(undefined, 'x'), undefined);
});
