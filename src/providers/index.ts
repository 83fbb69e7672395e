export * from './schema.ts';
export * from './loader.ts';
export * from './placeholders.ts';
export * from './redirect.ts';
export * from './granted-scopes.ts';
