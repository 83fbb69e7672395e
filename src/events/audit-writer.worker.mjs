// Worker threads do not inherit the parent's module hooks: register tsx here, then run the writer.
import { register } from 'tsx/esm/api';

register();
await import('./audit-writer.worker.ts');
