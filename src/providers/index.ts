export * from './schema.ts';
export * from './loader.ts';
export * from './placeholders.ts';
export * from './redirect.ts';
export * from './granted-scopes.ts';
export * from './json-path.ts';
