// Tags of connections and agents: `end_user` and `organization`, the ids a product embedding
// Warrant files them under, and free `labels` (string → string). Not secrets: they appear in
// views, audit entries and webhook payloads. The pure part lives here so the HTTP API, the CLI
// and the dashboard read and check them the same way; the SQL filters are store/tags.ts.

/** A label key: lower case, digits, `_`, `.`, `-`; starts with a letter or digit; 1 to 63 characters. */
export const LABEL_KEY_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
/** Longest `end_user` and `organization` id, in characters. */
export const MAX_TAG_ID_LENGTH = 256;
export const MAX_LABEL_VALUE_LENGTH = 256;
/** Most labels on one connection or agent. */
export const MAX_LABELS = 32;
/** Most `label` selectors in one list query. */
export const MAX_LABEL_SELECTORS = 32;

export type Labels = Record<string, string>;

export interface Tags {
  end_user: string | null;
  organization: string | null;
  labels: Labels;
}

/** A change of tags: a member left out stays as it is; `null` clears an id; `labels` replaces every label. */
export interface TagPatch {
  end_user?: string | null;
  organization?: string | null;
  labels?: Labels;
}

/** `label=k=v` (the label `k` is `v`) or `label=k` (the label `k` is set, whatever its value). */
export interface LabelSelector {
  key: string;
  value?: string;
}

/** Filters of a list: every one given must match. */
export interface TagFilter {
  end_user?: string;
  organization?: string;
  labels?: readonly LabelSelector[];
}

export const NO_TAGS: Readonly<Tags> = Object.freeze({ end_user: null, organization: null, labels: Object.freeze({}) });

/** Why `labels` is not a valid label set, with the offending member's path (`labels.Key`), or undefined. */
export function labelsProblem(labels: Labels): { field: string; detail: string } | undefined {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) return { field: 'labels', detail: `at most ${MAX_LABELS} labels` };
  for (const key of keys) {
    if (!LABEL_KEY_PATTERN.test(key)) return { field: `labels.${key}`, detail: `a label key must match ${LABEL_KEY_PATTERN.source}` };
    const value = labels[key];
    if (typeof value !== 'string') return { field: `labels.${key}`, detail: 'a label value must be a string' };
    if (value.length > MAX_LABEL_VALUE_LENGTH) return { field: `labels.${key}`, detail: `a label value is at most ${MAX_LABEL_VALUE_LENGTH} characters` };
  }
  return undefined;
}

/** Why a tag change (or the tags given at creation) is not valid, with the field at fault, or undefined. */
export function tagPatchProblem(patch: TagPatch): { field: string; detail: string } | undefined {
  for (const field of ['end_user', 'organization'] as const) {
    const v = patch[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || v.length < 1 || v.length > MAX_TAG_ID_LENGTH) return { field, detail: `must be 1 to ${MAX_TAG_ID_LENGTH} characters` };
  }
  if (patch.labels !== undefined) {
    if (!patch.labels || typeof patch.labels !== 'object' || Array.isArray(patch.labels)) return { field: 'labels', detail: 'must be an object of strings' };
    return labelsProblem(patch.labels);
  }
  return undefined;
}

/**
 * One `label` query value: `key=value` (split at the first `=`, so a value may hold `=`) or a
 * bare `key`. Throws a `TypeError` saying what is wrong; the caller names the field.
 */
export function parseLabelSelector(text: string): LabelSelector {
  const at = text.indexOf('=');
  const key = at === -1 ? text : text.slice(0, at);
  if (!LABEL_KEY_PATTERN.test(key)) throw new TypeError(`"${key.slice(0, 70)}" is not a label key (${LABEL_KEY_PATTERN.source}); give key=value or key`);
  if (at === -1) return { key };
  const value = text.slice(at + 1);
  if (value.length > MAX_LABEL_VALUE_LENGTH) throw new TypeError(`the value of label ${key} is longer than ${MAX_LABEL_VALUE_LENGTH} characters`);
  return { key, value };
}

/** Every `label` query value (one, several, or none), parsed. */
export function parseLabelSelectors(values: string | readonly string[] | undefined): LabelSelector[] {
  const list = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  if (list.length > MAX_LABEL_SELECTORS) throw new TypeError(`at most ${MAX_LABEL_SELECTORS} label filters`);
  return list.map(parseLabelSelector);
}

/** The selector as a query value again: `key=value` or `key`. */
export const formatLabelSelector = (s: LabelSelector): string => (s.value === undefined ? s.key : `${s.key}=${s.value}`);

/** Does a label set satisfy every selector? (The store filters in SQL; this is the same rule, for callers holding rows.) */
export function labelsMatch(labels: Labels, selectors: readonly LabelSelector[]): boolean {
  return selectors.every((s) => Object.hasOwn(labels, s.key) && (s.value === undefined || labels[s.key] === s.value));
}

/** Stored labels (JSON text) as an object of strings; anything else reads as no labels. */
export function parseLabels(json: string | null | undefined): Labels {
  if (!json) return {};
  try {
    const parsed: unknown = JSON.parse(json);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

/** The tags of a stored row (connection, agent, connect session). */
export function tagsOf(row: { end_user: string | null; organization: string | null; labels: string | null }): Tags {
  return { end_user: row.end_user, organization: row.organization, labels: parseLabels(row.labels) };
}

/** The columns a set of tags is stored as: labels in key order, so equal sets are equal text (a change is found by comparing it). */
export function tagColumns(tags: Partial<Tags>): { end_user?: string | null; organization?: string | null; labels?: string } {
  return {
    ...(tags.end_user !== undefined ? { end_user: tags.end_user } : {}),
    ...(tags.organization !== undefined ? { organization: tags.organization } : {}),
    ...(tags.labels !== undefined ? { labels: JSON.stringify(Object.fromEntries(Object.entries(tags.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))) } : {}),
  };
}
