// Query parameters of the list routes (`after`, `limit`), checked like body fields: a bad value is a 400 that
// names it, never a silent default.
import type { ServerResponse } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { ListObject } from '../../common/api';
import type { Page } from '../runtime';
import { invalid, sendJson } from './errors';

/** `limit`: a whole number from 1 to `max`, `fallback` when absent. */
export function limitParam(url: URL, fallback: number, max: number): number {
  const raw = url.searchParams.get('limit');
  if (raw === null) return fallback;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw invalid(`Invalid value for 'limit': expected a whole number from 1 to ${max}, got '${raw}'.`, 'limit');
  return n;
}

/** `after`, when given (an empty value counts as absent). */
export function afterParam(url: URL): string | undefined {
  const raw = url.searchParams.get('after');
  return raw === null || raw === '' ? undefined : raw;
}

/** A page as OpenAI's list object, with the first and last ids. */
export function listObject<T extends { id: string }>(page: Page<T>): ListObject<T> {
  const data = page.data;
  return { object: 'list', data, has_more: page.has_more, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null };
}

/** Sends a page as a list object. */
export function sendList<T extends { id: string }>(res: ServerResponse, page: Page<T>): void {
  sendJson(res, 200, listObject(page));
}

/**
 * Streams a file as the response (never read whole into memory). The path comes from a store or the runtime,
 * never from the request.
 */
export async function sendFile(res: ServerResponse, path: string, contentType: string, downloadName: string): Promise<void> {
  const info = await stat(path);
  res.statusCode = 200;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', info.size);
  res.setHeader('Content-Disposition', `attachment; filename="${downloadName.replace(/["\\\r\n]/g, '_')}"`);
  if (res.req.method === 'HEAD') {
    res.end();
    return;
  }
  try {
    await pipeline(createReadStream(path), res);
  } catch (error) {
    // A reader that went away mid-download is not the server's failure.
    if (!res.destroyed) throw error;
  }
}
