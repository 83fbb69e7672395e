import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { WarrantError } from '../../errors/index.ts';
import type { ConnectionRow } from '../../store/index.ts';
import type { StoredServer } from './servers.ts';

// Step-up on an upstream `403 insufficient_scope` (RFC 6750 §3.1, MCP 2025-11-25 "Scope challenge
// handling"): the owner is asked to consent to the scopes the connection holds *plus* those the
// server names (never only the new ones: a replaced scope set would lose what worked). The limit on
// retries is built in: a link is offered only while the challenge names a scope the connection does
// not hold; once it holds them all and the server still refuses, another consent cannot help, and
// the answer is a plain `scope_insufficient` with no link (no authorization loop).

const list = (json: string | null | undefined): string[] => {
  try {
    const v = JSON.parse(json ?? '[]') as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
};

/** The scopes an upstream challenge names (upstream.ts puts them on the error). */
export const challengedScopes = (err: WarrantError): string[] =>
  Array.isArray(err.members.required_scope) ? (err.members.required_scope as unknown[]).filter((x): x is string => typeof x === 'string') : [];

export interface StepUp {
  /** Every scope the owner is asked for: held, requested before, and challenged. */
  scopes: string[];
  /** Challenged scopes the connection does not hold; empty: a step-up would not help. */
  missing: string[];
}

export function stepUpOf(conn: Pick<ConnectionRow, 'scopes' | 'requested_scopes'>, err: WarrantError): StepUp {
  const held = list(conn.scopes);
  const required = challengedScopes(err);
  const missing = required.filter((s) => !held.includes(s));
  return { scopes: [...new Set([...list(conn.requested_scopes), ...held, ...required])], missing };
}

/** The tool result of a step-up: a sentence with the link for the owner, and the problem as JSON (`connect_url`). */
export function stepUpResult(server: StoredServer, step: StepUp, link: string | undefined, requestId: string): CallToolResult {
  if (!step.missing.length || !link) {
    const detail = step.missing.length
      ? `the MCP server ${server.name} needs more scopes for this (${step.missing.join(' ').slice(0, 300)}); ask the owner to connect it again with them`
      : `the MCP server ${server.name} refused the call for a missing scope although the connection holds every scope it names; another consent would not change that`;
    const problem = new WarrantError('scope_insufficient', detail, { required_scope: step.scopes }).toProblem(requestId);
    return { content: [{ type: 'text', text: JSON.stringify(problem) }], isError: true };
  }
  const problem = new WarrantError('scope_insufficient', `the MCP server ${server.name} needs the owner's consent to more scopes`, { required_scope: step.scopes }).toProblem(requestId);
  const text =
    `The MCP server "${server.name}" needs more access for this tool (${step.missing.join(', ').slice(0, 300)}). ` +
    `Ask the user to approve it by opening this link in their browser (it works once): ${link} Then retry.`;
  return { content: [{ type: 'text', text }, { type: 'text', text: JSON.stringify({ ...problem, connect_url: link }) }], isError: true };
}
