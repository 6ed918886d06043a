// Request bodies: JSON with a size limit and a deadline, and the media-type checks that come before reading
// anything. A body is never trusted to be small: the limit is checked against Content-Length first, then
// against the bytes as they arrive.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './errors';

/** The largest JSON body accepted (job and chat requests are a few kilobytes; 1 MiB leaves room for long chats). */
export const MAX_JSON_BYTES = 1 << 20;

/** How long a client may take to send a JSON body once its headers are in. */
export const JSON_BODY_DEADLINE_MS = 30_000;

/** The media type of a request without its parameters, lower case ('' when absent). */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/** 413 for a body over `limit` bytes. */
export function tooLarge(limit: number, what: string): HttpError {
  return new HttpError('payload_too_large', `The ${what} is larger than the limit of ${limit} bytes.`, 'payload_too_large');
}

/** Refuses before reading when Content-Length already says the body is over `limit`. */
export function checkDeclaredLength(req: IncomingMessage, limit: number, what: string): void {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit, what);
}

/**
 * After a refusal that left the body unread: the connection can't be reused, but closing it at once with bytes
 * still unread makes the kernel reset it, and the client may lose the answer. So the rest is read and dropped
 * for a short while, then the socket is closed.
 */
export function discardRest(req: IncomingMessage, res: ServerResponse, graceMs = 2_000): void {
  if (req.complete) return;
  res.shouldKeepAlive = false;
  req.resume();
  const timer = setTimeout(() => req.socket.destroy(), graceMs);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
}

/** Line and column (1-based) of a character offset, for messages that say where. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

/** Parses JSON text, refusing it with a 400 that says where the text is broken. */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // V8 says "… in JSON at position N" for most mistakes; the offset is turned into a line and column.
    const at = /at position (\d+)/.exec(message);
    const where = at ? ` at line ${lineColumn(text, Number(at[1])).line}, column ${lineColumn(text, Number(at[1])).column}` : '';
    const what = message.replace(/ in JSON at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)$/, '');
    throw new HttpError('invalid_request_error', `The request body is not valid JSON${where}: ${what}.`, 'invalid_json');
  }
}

/**
 * Reads a JSON body: 415 unless it is `application/json`, 413 over `limit`, 400 when it does not parse or is
 * not an object. A client that takes longer than the deadline to send it loses its connection (it cannot
 * hold the server's memory and a socket for ever).
 */
export async function readJson(req: IncomingMessage, res: ServerResponse, limit = MAX_JSON_BYTES): Promise<unknown> {
  if (mediaType(req) !== 'application/json') {
    const got = req.headers['content-type'];
    throw new HttpError(
      'unsupported_media_type',
      `The request body must be JSON (Content-Type: application/json), got ${got ? `'${got}'` : 'no Content-Type'}.`,
      'unsupported_media_type',
    );
  }
  try {
    checkDeclaredLength(req, limit, 'request body');
  } catch (error) {
    discardRest(req, res);
    throw error;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const deadline = setTimeout(() => req.destroy(new HttpError('invalid_request_error', 'The request body took too long to arrive.', 'body_timeout')), JSON_BODY_DEADLINE_MS);
  deadline.unref();
  try {
    // Leaving the loop early (too large) must not destroy the request: the socket still has to carry the 413.
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        discardRest(req, res);
        throw tooLarge(limit, 'request body');
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (HttpError.is(error)) throw error;
    // The client went away mid-body: nothing to answer; the caller's write fails quietly.
    throw new HttpError('invalid_request_error', 'The request body ended before it was complete.', 'incomplete_body');
  } finally {
    clearTimeout(deadline);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError('invalid_request_error', 'The request body is empty; expected a JSON object.', 'invalid_json');
  const value = parseJsonText(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError('invalid_request_error', `The request body must be a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}.`, 'invalid_json');
  }
  return value;
}
