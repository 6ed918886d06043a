// API keys: who a request comes from. Keys are kept only as SHA-256 digests and compared in constant time, so
// neither the memory nor the timing of a refusal tells a caller how close a guess was. The owner of a thing is
// derived from the key (a hash prefix), so the key itself is never written next to what it owns.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Owner } from '../runtime';
import { HttpError } from './errors';

/** The owner id of a key: the first 16 hex digits of its SHA-256. */
export function ownerOf(key: string): Owner {
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 16);
}

/** A new API key: 32 random bytes, base64url, with the `fs-` prefix that tells people what it is. */
export function generateApiKey(): string {
  return `fs-${randomBytes(32).toString('base64url')}`;
}

/** The WebSocket subprotocol prefix that carries a key where a browser cannot set an Authorization header. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

/** The keys the backend accepts. */
export class KeyRing {
  private readonly digests: { digest: Buffer; owner: Owner }[];

  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new Error('KeyRing needs at least one key');
    this.digests = keys.map((key) => ({ digest: createHash('sha256').update(key, 'utf8').digest(), owner: ownerOf(key) }));
  }

  /** The owner of `key`, or undefined. Every known key is compared, whatever matches first. */
  check(key: string): Owner | undefined {
    const digest = createHash('sha256').update(key, 'utf8').digest();
    let found: Owner | undefined;
    for (const entry of this.digests) {
      if (timingSafeEqual(entry.digest, digest)) found = entry.owner;
    }
    return found;
  }

  /**
   * The owner of a request: the `Authorization: Bearer` header, or (WebSocket upgrades only, where browsers
   * can't set headers) a `Sec-WebSocket-Protocol` entry `bearer.<key>`. Throws a 401 otherwise.
   */
  authenticate(req: IncomingMessage, allowProtocol = false): Owner {
    const header = req.headers.authorization;
    let key: string | undefined;
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) throw unauthorized('The Authorization header must be "Bearer <API key>".');
      key = match[1];
    } else if (allowProtocol) {
      const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      key = protocols.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX))?.slice(BEARER_PROTOCOL_PREFIX.length);
    }
    if (key === undefined) throw unauthorized('No API key: send the header "Authorization: Bearer <API key>".');
    const owner = this.check(key);
    if (owner === undefined) throw unauthorized('The API key is not valid for this backend.');
    return owner;
  }
}

function unauthorized(message: string): HttpError {
  return new HttpError('authentication_error', message, 'invalid_api_key', null, { headers: { 'WWW-Authenticate': 'Bearer' } });
}
