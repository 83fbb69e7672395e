import { z } from 'zod';
import { invalidRequest } from '../../errors/index.ts';
import {
  LABEL_KEY_PATTERN,
  MAX_LABEL_VALUE_LENGTH,
  MAX_LABELS,
  MAX_TAG_ID_LENGTH,
  parseLabelSelectors,
  type TagFilter,
} from '../../util/tags.ts';

// The wire shapes of tags (util/tags.ts), shared by the connection, connect-session and agent
// routes: in bodies, in views, and as list filters.

const tagId = z.string().min(1).max(MAX_TAG_ID_LENGTH);

const labels = z
  .record(
    z.string().regex(LABEL_KEY_PATTERN, { error: `a label key must match ${LABEL_KEY_PATTERN.source}` }),
    z.string().max(MAX_LABEL_VALUE_LENGTH),
  )
  .refine((o) => Object.keys(o).length <= MAX_LABELS, { error: `at most ${MAX_LABELS} labels` })
  .meta({ description: `Free labels: keys ${LABEL_KEY_PATTERN.source}, values up to ${MAX_LABEL_VALUE_LENGTH} characters, at most ${MAX_LABELS}.`, examples: [{ team: 'billing', env: 'prod' }] });

const endUser = tagId.meta({ description: 'The id of the end user (of the product embedding Warrant) this belongs to.' });
const organization = tagId.meta({ description: 'The id of the organization (of the product embedding Warrant) this belongs to.' });

/** Optional tags of a creation body (connect session, import, agent). */
export const tagsBody = {
  end_user: endUser.optional(),
  organization: organization.optional(),
  labels: labels.optional(),
};

/** A PATCH of tags: a member left out stays; `null` clears an id; `labels` replaces every label. */
export const tagsPatchBody = {
  end_user: endUser.nullable().optional(),
  organization: organization.nullable().optional(),
  labels: labels.optional(),
};

/** The tags in every view: always present (null ids, `{}` labels when unset). */
export const tagsView = {
  end_user: z.string().nullable(),
  organization: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
};

/** List filters: `end_user`, `organization`, repeatable `label=key=value` or `label=key`; all must match. */
export const tagsQuery = {
  end_user: tagId.optional(),
  organization: tagId.optional(),
  label: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .meta({ description: 'Repeatable: `key=value` (the label is that value) or `key` (the label is set). Every one must match.' }),
};

/** The filter of a list query; a malformed `label` is `invalid_request` naming `query.label`. */
export function tagFilterOf(query: { end_user?: string; organization?: string; label?: string | string[] }): TagFilter {
  let selectors;
  try {
    selectors = parseLabelSelectors(query.label);
  } catch (err) {
    throw invalidRequest('query.label', (err as Error).message);
  }
  return {
    ...(query.end_user !== undefined ? { end_user: query.end_user } : {}),
    ...(query.organization !== undefined ? { organization: query.organization } : {}),
    ...(selectors.length ? { labels: selectors } : {}),
  };
}
