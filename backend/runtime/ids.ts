// Object ids: a prefix and 24 letters or digits from crypto randomness (common/api.ts ID_BODY), so that an id is
// unguessable and a path built from a checked id can't leave its folder.
import { randomInt } from 'node:crypto';
import { ID_PREFIX } from '../../common/api';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A new id of that kind (`ftevent-…`, `ftckpt-…`, `chatcmpl-…`). */
export function newId(kind: keyof typeof ID_PREFIX): string {
  let body = '';
  // randomInt draws without modulo bias.
  for (let i = 0; i < 24; i++) body += ALPHABET[randomInt(ALPHABET.length)];
  return ID_PREFIX[kind] + body;
}
