import { createHash } from 'node:crypto';

/** A protocol's fingerprint (SPEC.md section 3): the MD5 of its canonical text's UTF-8 bytes. */
export function fingerprintOf(text: string): Buffer {
  return createHash('md5').update(text).digest();
}

/** {@link fingerprintOf} in lowercase hex, the key protocols are cached by. */
export function fingerprintHex(text: string): string {
  return createHash('md5').update(text).digest('hex');
}

/** Throws unless `text` hashes to `hex`: a peer's protocol text must match the fingerprint it sent with it. */
export function checkFingerprint(text: string, hex: string, whose: 'client' | 'server'): void {
  if (fingerprintHex(text) !== hex) throw new Error(`${whose} protocol does not match its fingerprint`);
}
