import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  LABEL_KEY_PATTERN,
  MAX_LABEL_SELECTORS,
  MAX_LABEL_VALUE_LENGTH,
  formatLabelSelector,
  labelsMatch,
  labelsProblem,
  parseLabelSelector,
  parseLabelSelectors,
  parseLabels,
  tagColumns,
} from '../../src/util/tags.ts';

// The `label` filter parser (util/tags.ts), by property: what the HTTP API, the CLI and the
// dashboard accept as `label=k=v` or `label=k`.

const keyChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789_.-');
const leadChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789');
const validKey = fc.tuple(leadChar, fc.string({ unit: keyChar, maxLength: 62 })).map(([a, b]) => a + b);
const value = fc.string({ maxLength: MAX_LABEL_VALUE_LENGTH, unit: 'grapheme-ascii' });
const anyValue = fc.oneof(value, fc.string({ maxLength: MAX_LABEL_VALUE_LENGTH }));

test('key=value and key round-trip through the parser and the formatter; the value is everything after the first =', () => {
  fc.assert(
    fc.property(validKey, fc.option(anyValue, { nil: undefined }), (key, v) => {
      const selector = v === undefined ? { key } : { key, value: v };
      const text = formatLabelSelector(selector);
      assert.deepEqual(parseLabelSelector(text), selector);
      assert.equal(formatLabelSelector(parseLabelSelector(text)), text);
    }),
    { numRuns: 500 },
  );
});

test('whatever precedes the first = must be a label key, else the parser refuses (TypeError) and never returns', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), (key, v) => {
      fc.pre(!LABEL_KEY_PATTERN.test(key) && !key.includes('='));
      assert.throws(() => parseLabelSelector(v === undefined ? key : `${key}=${v}`), TypeError);
    }),
    { numRuns: 500 },
  );
  for (const bad of ['', '=', '=x', 'Team=x', 'a b', '-lead', '.lead', '_lead', 'k'.repeat(64), 'ключ=x']) assert.throws(() => parseLabelSelector(bad), TypeError, bad);
});

test('a value longer than the limit is refused; at the limit it is taken', () => {
  assert.deepEqual(parseLabelSelector(`k=${'v'.repeat(MAX_LABEL_VALUE_LENGTH)}`), { key: 'k', value: 'v'.repeat(MAX_LABEL_VALUE_LENGTH) });
  assert.throws(() => parseLabelSelector(`k=${'v'.repeat(MAX_LABEL_VALUE_LENGTH + 1)}`), TypeError);
});

test('one value, several, or none; too many are refused', () => {
  assert.deepEqual(parseLabelSelectors(undefined), []);
  assert.deepEqual(parseLabelSelectors('a=1'), [{ key: 'a', value: '1' }]);
  assert.deepEqual(parseLabelSelectors(['a=1', 'b']), [{ key: 'a', value: '1' }, { key: 'b' }]);
  assert.throws(() => parseLabelSelectors(Array.from({ length: MAX_LABEL_SELECTORS + 1 }, (_, i) => `k${i}`)), TypeError);
});

test('a label set matches a parsed selector exactly when it has the key (and, given one, that value)', () => {
  const labels = fc.dictionary(validKey, value, { maxKeys: 6 });
  fc.assert(
    fc.property(labels, validKey, fc.option(value, { nil: undefined }), (set, key, v) => {
      const selector = parseLabelSelector(formatLabelSelector(v === undefined ? { key } : { key, value: v }));
      const expected = Object.hasOwn(set, key) && (v === undefined || set[key] === v);
      assert.equal(labelsMatch(set, [selector]), expected);
      // Every label of a set matches it, alone and all together.
      const own = Object.entries(set).map(([k, val]) => parseLabelSelector(`${k}=${val}`));
      assert.equal(labelsMatch(set, own), true);
    }),
    { numRuns: 300 },
  );
});

test('stored labels survive the column round trip, as the same text whatever their order; a valid set has no problem', () => {
  fc.assert(
    fc.property(fc.dictionary(validKey, value, { maxKeys: 32 }), (set) => {
      const stored = tagColumns({ labels: set }).labels!;
      assert.deepEqual(parseLabels(stored), { ...set });
      // The same set given in another order is the same text (a change of tags compares the text).
      assert.equal(tagColumns({ labels: Object.fromEntries(Object.entries(set).reverse()) }).labels, stored);
      assert.equal(labelsProblem(set), undefined);
    }),
    { numRuns: 200 },
  );
  assert.deepEqual(parseLabels('not json'), {});
  assert.deepEqual(parseLabels('[1]'), {});
  assert.deepEqual(parseLabels('{"a":"x","b":2}'), { a: 'x' });
});
