export { seal, open, rewrap, CryptoError, type Sealed } from './envelope.ts';
export {
  parseKeyRing,
  generateKeySpec,
  loadOrCreateKeyFile,
  readKeyFileSpecs,
  writeKeyFile,
  keyFileName,
  keyId,
  KeyRingError,
  fileKeyRingSource,
  staticKeyRing,
  type KeyRing,
  type KeyRingSource,
} from './keyring.ts';
export { hashSecret, verifySecret, randomToken, safeEqual } from './secrets.ts';
