import { Command, Option } from 'commander';
import { AdminApiError } from './admin-api.ts';

// The tag flags of the admin commands: filters of `connections list` and `agents list`, and the
// tags `warrant connect` sets on the connection it makes.

const collect = (v: string, all: string[] = []) => [...all, v];

export interface TagFilterOpts {
  endUser?: string;
  organization?: string;
  label?: string[];
}

/** --end-user, --organization and repeatable --label k=v | k (every one given must match). */
export function withTagFilters(cmd: Command): Command {
  return cmd
    .option('--end-user <id>', 'only those filed under this end user')
    .option('--organization <id>', 'only those filed under this organization')
    .addOption(new Option('--label <k=v>', 'only those with this label (k=v: that value; k: any value); repeatable, all must match').argParser(collect));
}

/** The list query's tag parameters (`label` repeated). */
export function tagQuery(o: TagFilterOpts): [string, string][] {
  return [
    ...(o.endUser ? [['end_user', o.endUser] as [string, string]] : []),
    ...(o.organization ? [['organization', o.organization] as [string, string]] : []),
    ...(o.label ?? []).map((l) => ['label', l] as [string, string]),
  ];
}

/** --end-user, --organization and repeatable --label k=v: the tags a new connection (or agent) gets. */
export function withTagSettings(cmd: Command, what = 'connection'): Command {
  return cmd
    .option('--end-user <id>', `file the ${what} under this end user (your product’s user id)`)
    .option('--organization <id>', `file the ${what} under this organization`)
    .addOption(new Option('--label <k=v>', `a free label on the ${what}; repeatable`).argParser(collect));
}

/** `{end_user?, organization?, labels?}` of the request body; a label without `=` is refused. */
export function tagBody(o: TagFilterOpts): Record<string, unknown> {
  const labels: Record<string, string> = {};
  for (const l of o.label ?? []) {
    const at = l.indexOf('=');
    if (at <= 0) throw new AdminApiError(`--label ${l}: expected key=value`);
    labels[l.slice(0, at)] = l.slice(at + 1);
  }
  return {
    ...(o.endUser ? { end_user: o.endUser } : {}),
    ...(o.organization ? { organization: o.organization } : {}),
    ...(o.label?.length ? { labels } : {}),
  };
}
