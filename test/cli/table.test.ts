import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fields, relative, statusColour, table } from '../../src/cli/table.ts';

// The admin commands' table printer: aligned columns; cut to the terminal's width only on a
// terminal (never an id column); colours only when asked for (a terminal without NO_COLOR).

const rows = [
  ['con_1', 'a-rather-long-owner@example.com', 'active'],
  ['con_22', 'b@example.com', 'reauth_required'],
];

test('plain: aligned, two spaces apart, nothing cut, no escape codes', () => {
  const lines = table([{ header: 'ID', keep: true }, 'OWNER', { header: 'STATUS', colour: statusColour }], rows, { color: false });
  assert.deepEqual(lines, [
    'ID      OWNER                            STATUS',
    'con_1   a-rather-long-owner@example.com  active',
    'con_22  b@example.com                    reauth_required',
  ]);
});

test('on a terminal: the widest cuttable column gives way first, with …; ids stay whole; statuses coloured', () => {
  const lines = table([{ header: 'ID', keep: true }, 'OWNER', { header: 'STATUS', colour: statusColour }], rows, { color: true, columns: 40 });
  const plain = lines.map((l) => l.replace(/\u001b\[\d+m/g, ''));
  for (const l of plain) assert.ok(l.length <= 40, `${l.length}: ${l}`);
  assert.ok(plain[1]!.startsWith('con_1   '));
  assert.match(plain[1]!, /a-rather-long-o?…/);
  assert.ok(lines[1]!.includes('\u001b[32mactive\u001b[0m'));
  assert.ok(lines[2]!.includes('\u001b[31mreauth_required\u001b[0m'));
  assert.ok(!lines[0]!.includes('\u001b['), 'headers are not coloured');
});

test('newlines and tabs in a cell cannot break a row; key: value blocks align and skip undefined', () => {
  assert.deepEqual(table(['A', 'B'], [['x\ny', 'z']], { color: false }), ['A    B', 'x y  z']);
  assert.deepEqual(fields([['id', 'con_1'], ['last error', undefined], ['owner', 'o']]), ['id:    con_1', 'owner: o']);
});

test('relative times', () => {
  const now = Date.parse('2025-06-01T12:00:00Z');
  assert.equal(relative('2025-06-01T12:04:00Z', now), 'in 4m');
  assert.equal(relative('2025-06-01T09:00:00Z', now), '3h ago');
  assert.equal(relative('2025-06-04T12:00:00Z', now), 'in 3d');
  assert.equal(relative(null, now), '-');
});
