// Module resolve hook (node:module register): appends every resolved URL to a file, so a test can
// tell which modules a process loaded. Runs on the loader thread; it only observes.
import { appendFileSync } from 'node:fs';

let file;

export async function initialize(data) {
  file = data.file;
}

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(file, `${resolved.url}\n`);
  return resolved;
}
