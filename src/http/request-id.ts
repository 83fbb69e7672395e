import { randomUUID } from 'node:crypto';

/** `req_` + 20 hex characters: the `instance` of problems and the `Warrant-Request-Id` header. */
export const newRequestId = () => `req_${randomUUID().replaceAll('-', '').slice(0, 20)}`;
