import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { problemTypes, WarrantError, type ProblemCode } from '../../src/errors/index.ts';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const designUrl = new URL('../../../shared/DESIGN.md', import.meta.url);
const design = existsSync(designUrl) ? readFileSync(designUrl, 'utf8') : undefined;

test('every problem code is documented in docs/errors.md with its status', () => {
  for (const [code, { status }] of Object.entries(problemTypes)) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} is missing from docs/errors.md`);
    assert.ok(row.includes(String(status)), `${code}: docs give another status than ${status}`);
  }
});

test("every code of DESIGN.md's contract exists with the contract's status", { skip: design ? false : '../shared/DESIGN.md not beside this checkout' }, () => {
  const rows = design!.split('\n').filter((l) => /^\| `[a-z_]+` \| \d{3}/.test(l));
  assert.ok(rows.length >= 8);
  for (const row of rows) {
    const [, code, status] = /^\| `([a-z_]+)` \| (\d{3})/.exec(row)!;
    assert.ok(code! in problemTypes, `${code} is in DESIGN.md but not in src/errors`);
    assert.equal(problemTypes[code as ProblemCode].status, Number(status));
  }
});

test('an internal error keeps its cause private', () => {
  const err = new WarrantError('internal_error', 'db password is hunter2', {}, { cause: new Error('secret') });
  const body = err.toProblem('req_1');
  assert.equal(body.detail, undefined);
  assert.ok(!JSON.stringify(body).includes('hunter2'));
  assert.equal(body.instance, 'req_1');
});
