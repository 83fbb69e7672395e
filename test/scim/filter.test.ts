import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ScimError, formatFilter, parseFilter, type FilterAttribute } from '../../src/scim/index.ts';

const attributes: FilterAttribute[] = ['userName', 'externalId', 'id'];

/** The same name in any letter case (RFC 7643 §2.1: attribute names are case-insensitive). */
const anyCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join(''));
const gap = fc.constantFrom(' ', '  ', '\t', ' \t ');

function invalidFilter(fn: () => unknown): ScimError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ScimError, `expected a ScimError, got ${String(err)}`);
    assert.equal(err.status, 400);
    assert.equal(err.scimType, 'invalidFilter');
    return err;
  }
  assert.fail('expected invalidFilter');
}

describe('SCIM filter parser (userName / externalId / id eq "…")', () => {
  test('the filters Okta and Entra send', () => {
    assert.deepEqual(parseFilter('userName eq "alice@example.com"'), { attribute: 'userName', value: 'alice@example.com' });
    assert.deepEqual(parseFilter('userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"'), { attribute: 'userName', value: 'Test_User_dfeef4c5-5681-4387-b016-bdf221e82081' });
    assert.deepEqual(parseFilter('externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"'), { attribute: 'externalId', value: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef' });
    assert.deepEqual(parseFilter('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob"'), { attribute: 'userName', value: 'bob' });
    assert.deepEqual(parseFilter('userName eq "a \\"quoted\\" \\\\ name"'), { attribute: 'userName', value: 'a "quoted" \\ name' });
  });

  test('any value round-trips through its JSON-string form, whatever the case and spacing of names and operator', () => {
    fc.assert(
      fc.property(fc.constantFrom(...attributes).chain((a) => fc.tuple(fc.constant(a), anyCase(a))), anyCase('eq'), gap, gap, fc.string({ unit: 'binary', maxLength: 100 }), ([attribute, spelled], op, g1, g2, value) => {
        assert.deepEqual(parseFilter(`${spelled}${g1}${op}${g2}${JSON.stringify(value)}`), { attribute, value });
        assert.deepEqual(parseFilter(formatFilter({ attribute, value })), { attribute, value });
      }),
      { numRuns: 300 },
    );
  });

  test('any input parses or is refused with 400 invalidFilter: never another error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.stringMatching(/^(userName|externalId|id|emails|name\.givenName) (eq|ne|co|sw|pr|gt) ("[^"]*"|true|1|null)( (and|or) .*)?$/)), (input) => {
        try {
          const f = parseFilter(input);
          assert.ok(attributes.includes(f.attribute));
          assert.equal(typeof f.value, 'string');
        } catch (err) {
          assert.ok(err instanceof ScimError, `not a ScimError: ${String(err)}`);
          assert.equal(err.scimType, 'invalidFilter');
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('other operators, attributes, value types, and compound filters are invalidFilter (never a wider answer)', () => {
    fc.assert(
      fc.property(fc.constantFrom('ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'), fc.string({ maxLength: 50 }), (op, value) => {
        invalidFilter(() => parseFilter(`userName ${op} ${JSON.stringify(value)}`));
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 50 }), fc.string({ maxLength: 50 }), fc.constantFrom('and', 'or', 'AND'), (a, b, join) => {
        invalidFilter(() => parseFilter(`userName eq ${JSON.stringify(a)} ${join} externalId eq ${JSON.stringify(b)}`));
      }),
    );
    for (const f of [
      'emails[type eq "work"].value eq "a@b.c"',
      'name.givenName eq "A"',
      'userName pr',
      'userName eq alice',
      'userName eq true',
      'userName eq "unterminated',
      'userName eq "bad \\x escape"',
      'not (userName eq "a")',
      '(userName eq "a")',
      '',
      'userName',
      `userName eq "${'a'.repeat(3000)}"`,
    ]) {
      invalidFilter(() => parseFilter(f));
    }
  });
});
