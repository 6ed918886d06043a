// A streaming multipart/form-data parser (RFC 7578): it turns a request body into part headers and data
// chunks as they arrive, keeping at most one delimiter's worth of bytes besides the chunk in hand, so a
// gigabyte upload never sits in memory. The consumer pulls events with `for await`; while it awaits (a disk
// write), no more of the body is read, which is the back-pressure.
import { HttpError } from './errors';

/** The start of a part, with what its Content-Disposition says. */
export interface PartStart {
  type: 'part';
  /** The form field's name. */
  name: string;
  /** The file name, for file fields. */
  filename: string | undefined;
  contentType: string | undefined;
}

/** Bytes of the current part (only valid until the next event is pulled). */
export interface PartData {
  type: 'data';
  chunk: Buffer;
}

/** What the parser yields, in body order. */
export type MultipartEvent = PartStart | PartData;

/** The most bytes a part's headers may take (they are a few lines). */
const MAX_HEADER_BYTES = 16 * 1024;

/** The boundary of a `multipart/form-data` Content-Type, or undefined when the type is another or has none. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  // RFC 2046: 1 to 70 characters.
  return boundary && boundary.length <= 70 ? boundary : undefined;
}

function malformed(message: string): HttpError {
  return new HttpError('invalid_request_error', `The multipart body is malformed: ${message}.`, 'invalid_multipart');
}

function parseHeaders(text: string): PartStart {
  let name: string | undefined;
  let filename: string | undefined;
  let contentType: string | undefined;
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const header = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (header === 'content-disposition') {
      if (!/^form-data\s*(;|$)/i.test(value)) throw malformed(`a part's Content-Disposition is not form-data ('${value}')`);
      name = param(value, 'name');
      filename = param(value, 'filename');
    } else if (header === 'content-type') {
      contentType = value;
    }
  }
  if (name === undefined) throw malformed('a part has no Content-Disposition name');
  return { type: 'part', name, filename, contentType };
}

/** A parameter of a header value: quoted (with `\"` escapes) or a bare token. */
function param(value: string, key: string): string | undefined {
  const match = new RegExp(`;\\s*${key}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i').exec(value);
  if (!match) return undefined;
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : match[2];
}

/**
 * The events of a multipart body read from `source`. Throws a 400 HttpError (`invalid_multipart`) for a body
 * that breaks the format or ends before its closing delimiter; source errors (a client that went away) pass
 * through.
 */
export async function* multipartEvents(source: AsyncIterable<Buffer>, boundary: string): AsyncGenerator<MultipartEvent> {
  // The first delimiter may come at the very start (no CRLF before it); later ones always follow a CRLF.
  const first = Buffer.from(`--${boundary}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  let state: 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done' = 'preamble';
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of source) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      if (state === 'preamble') {
        const at = buf.indexOf(first);
        if (at < 0) {
          if (buf.length > MAX_HEADER_BYTES) throw malformed(`no delimiter "--${boundary}" at its start`);
          break;
        }
        buf = buf.subarray(at + first.length);
        state = 'after-delimiter';
      } else if (state === 'after-delimiter') {
        if (buf.length < 2) break;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = 'done';
          buf = Buffer.alloc(0);
          break;
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        const crlf = buf.indexOf('\r\n');
        if (crlf < 0) {
          if (buf.length > 256) throw malformed('a delimiter is not followed by a line break');
          break;
        }
        if (buf.subarray(0, crlf).toString('latin1').trim() !== '') throw malformed('a delimiter is followed by other text');
        buf = buf.subarray(crlf + 2);
        state = 'headers';
      } else if (state === 'headers') {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buf.length > MAX_HEADER_BYTES) throw malformed(`a part's headers are longer than ${MAX_HEADER_BYTES} bytes`);
          break;
        }
        const part = parseHeaders(buf.subarray(0, end).toString('utf8'));
        buf = buf.subarray(end + 4);
        state = 'body';
        yield part;
      } else if (state === 'body') {
        const at = buf.indexOf(delimiter);
        if (at >= 0) {
          if (at > 0) yield { type: 'data', chunk: buf.subarray(0, at) };
          buf = buf.subarray(at + delimiter.length);
          state = 'after-delimiter';
          continue;
        }
        // Keep what could be the start of a delimiter split across chunks; the rest is data.
        const keep = Math.min(buf.length, delimiter.length - 1);
        if (buf.length > keep) {
          const data = buf.subarray(0, buf.length - keep);
          buf = Buffer.from(buf.subarray(buf.length - keep));
          yield { type: 'data', chunk: data };
        }
        break;
      } else {
        // After the closing delimiter comes an epilogue, which is ignored.
        buf = Buffer.alloc(0);
        break;
      }
    }
  }
  if (state !== 'done') throw malformed('the body ended before its closing delimiter');
}
