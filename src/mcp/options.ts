// Every tuning knob of Warrant's own MCP server (/mcp/warrant) and its default, in one place.

export interface McpOptions {
  /** Sessions (the 2025 session-based era) held at once on this instance; past it, `initialize` is refused 503. */
  maxSessions: number;
  /** Sessions one agent may hold at once; opening one more closes that agent's least recently used. */
  maxSessionsPerAgent: number;
  /** A session unused this long (ms) is closed; its id then answers 404 and the client starts over. */
  sessionIdleMs: number;
  /** Largest JSON-RPC request body accepted on /mcp/warrant, in bytes. */
  requestBodyLimitBytes: number;
  /** Largest request body `call_api` forwards, in bytes. */
  callBodyLimitBytes: number;
  /** Most of an upstream answer `call_api` returns to the model, in bytes; the rest is cut (`truncated: true`). */
  callResponseLimitBytes: number;
  /** Deadline of one tool call (ms): a call still running then answers a typed `unavailable` problem. */
  toolDeadlineMs: number;
}

export const mcpDefaults: Readonly<McpOptions> = Object.freeze({
  maxSessions: 1_000,
  maxSessionsPerAgent: 20,
  sessionIdleMs: 30 * 60_000,
  requestBodyLimitBytes: 1 << 20,
  callBodyLimitBytes: 256 << 10,
  callResponseLimitBytes: 64 << 10,
  toolDeadlineMs: 60_000,
});
