// The uploaded datasets, one folder each under `{data}/files/{id}/`: `content.jsonl` (the bytes as sent) and
// `meta.json` (owner, name, counts, the shared system prompt). An upload is written under `.incoming/` while common/dataset checks it
// and only a complete, accepted folder is renamed into place, so the store never shows a half-written or
// refused file, whatever moment the process dies at. Everything is indexed in memory on open.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatasetFinding, FileObject } from '../../common/api';
import { ID_PREFIX, isIdOf } from '../../common/api';
import type { Finding } from '../../common/dataset/codes';
import { DatasetStreamChecker, type FileSummary } from '../../common/dataset/fileCheck';
import type { Log, Owner, Page } from '../runtime';

/** How many findings a refused upload reports (the total is given besides). */
export const MAX_REPORTED_FINDINGS = 100;

/**
 * The longest line an upload may have. The checker holds one line in memory at a time, so this bounds what an
 * upload costs in memory whatever its size; a real example is a few kilobytes, a long one a few megabytes.
 */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/** What `meta.json` holds. */
interface FileMeta {
  id: string;
  owner: Owner;
  filename: string;
  bytes: number;
  created_at: number;
  /** Milliseconds, to order files created within the same second. */
  created_ms: number;
  examples: number;
  warnings: number;
  /** The system prompt every example starts with, or null; absent in records written before it was kept. */
  system_prompt?: string | null;
}

/** Why an upload was not stored. */
export class UploadError extends Error {
  constructor(
    readonly reason: 'invalid_dataset' | 'too_large' | 'line_too_long',
    message: string,
    /** With `invalid_dataset`: the first findings (errors first) and how many there are in all. */
    readonly findings: DatasetFinding[] = [],
    readonly totalFindings = 0,
  ) {
    super(message);
    this.name = 'UploadError';
  }

  static is(e: unknown): e is UploadError {
    return e instanceof UploadError;
  }
}

/** A new id of `kind`: its prefix and 24 letters or digits from crypto randomness. */
export function newId(kind: keyof typeof ID_PREFIX): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  // 248 = 4 × 62: bytes at or above it are dropped so that every character is equally likely.
  let body = '';
  while (body.length < 24) {
    for (const byte of randomBytes(32)) {
      if (byte < 248 && body.length < 24) body += alphabet[byte % 62];
    }
  }
  return ID_PREFIX[kind] + body;
}

/** A file name as sent, reduced to what is safe to show: its last path segment, no control characters. */
export function cleanFilename(name: string | undefined): string {
  const last = (name ?? '').split(/[\\/]/).pop() ?? '';
  const clean = last.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 255);
  return clean === '' ? 'upload.jsonl' : clean;
}

function toFinding(f: Finding): DatasetFinding {
  return { line: f.line + 1, column: f.start + 1, code: f.code, severity: f.severity, message: f.message };
}

/**
 * Finds the system prompt that every example of a file starts with, one line at a time: the content of the
 * first message when it is a system message and the same in every example; null otherwise (no examples
 * included). A file without a shared prompt costs one parse of its first two examples. With one, a line that
 * starts with the same bytes as the first example up to the end of its first message has that same message
 * (the bytes parse alike), so only lines written differently are parsed: a generated dataset is checked at the
 * speed of a byte comparison.
 */
export class SharedSystemPrompt {
  private candidate: string | null | undefined;
  /** The first example's bytes up to the end of its first message, when the scanner could find it. */
  private prefix: Buffer | undefined;

  /** Takes the next example line (bytes `start`–`end` of `buf`, one JSON object). */
  example(buf: Uint8Array, start: number, end: number): void {
    if (this.candidate === null) return;
    if (this.prefix !== undefined && sameFirstMessage(buf, start, end, this.prefix)) return;
    const line = Buffer.from(buf.buffer, buf.byteOffset + start, end - start);
    const prompt = leadingSystemPrompt(line.toString('utf8'));
    if (this.candidate === undefined) {
      this.candidate = prompt;
      const at = prompt === null ? -1 : firstMessageEnd(line);
      // A byte-order mark starts the first line only: the lines after it are compared without it.
      const bom = line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf ? 3 : 0;
      if (at > 0) this.prefix = Buffer.from(line.subarray(bom, at));
    } else if (prompt !== this.candidate) {
      this.candidate = null;
    }
  }

  /** The shared prompt, or null. */
  get value(): string | null {
    return this.candidate ?? null;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const MESSAGES = Buffer.from('messages');

/**
 * Whether the line starts with `prefix` and cannot hold a second `messages` key after it (JSON.parse keeps the
 * last of two, which would make the prefix say nothing): no string after it is `messages`, or could be once its
 * escapes are decoded (a short string with a `\u`). A line that might is parsed instead. Plain loops: this runs
 * for every line of a large upload, where a native call per line costs more than the comparison.
 */
function sameFirstMessage(buf: Uint8Array, start: number, end: number, prefix: Buffer): boolean {
  const from = start + prefix.length;
  if (end <= from) return false;
  for (let k = 0; k < prefix.length; k++) if (buf[start + k] !== prefix[k]) return false;
  // The prefix ends with the first message's closing brace, outside any string.
  for (let i = from; i < end; i++) {
    if (buf[i] !== QUOTE) continue;
    const open = i + 1;
    let escaped = false;
    for (i = open; i < end && buf[i] !== QUOTE; i++) {
      if (buf[i] === BACKSLASH) {
        escaped = true;
        i++;
      }
    }
    const length = i - open;
    // `messages` spelt with escapes is at most 8 × 6 bytes.
    if (escaped ? length <= 48 : length === 8 && isMessages(buf, open)) return false;
  }
  return true;
}

function isMessages(buf: Uint8Array, at: number): boolean {
  for (let k = 0; k < 8; k++) if (buf[at + k] !== MESSAGES[k]) return false;
  return true;
}

/**
 * The offset just after the first element of the top-level `messages` array when that element is an object
 * (its closing brace), or -1 when the line is not shaped so (then every line is parsed; still correct). A small
 * scanner: strings with their escapes, nesting depth, and the `"messages"` key spelt plainly.
 */
function firstMessageEnd(line: Buffer): number {
  let depth = 0;
  /** The last string closed at depth 1 was `messages`; after its colon, the value is the array. */
  let keyIsMessages = false;
  let valueOfMessages = false;
  let inMessages = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === QUOTE) {
      const from = i + 1;
      for (i = from; i < line.length && line[i] !== QUOTE; i++) if (line[i] === BACKSLASH) i++;
      if (depth === 1) keyIsMessages = i - from === 8 && line.toString('latin1', from, i) === 'messages';
      if (inMessages && depth === 2) return -1;
      continue;
    }
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) continue;
    if (depth === 1 && c === COLON) {
      valueOfMessages = keyIsMessages;
      continue;
    }
    if (valueOfMessages) {
      if (c !== 0x5b) return -1;
      valueOfMessages = false;
      inMessages = true;
      depth++;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      if (inMessages && depth === 2 && c !== 0x7b) return -1;
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (inMessages && depth === 2) return i + 1;
      if (inMessages && depth < 2) return -1;
    } else if (inMessages && depth === 2 && c !== COMMA) {
      return -1;
    }
  }
  return -1;
}

/** The content of the line's first message when it is a system message with text content; else null. */
function leadingSystemPrompt(line: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(line.charCodeAt(0) === 0xfeff ? line.slice(1) : line);
  } catch {
    return null;
  }
  const messages = (value as { messages?: unknown } | null)?.messages;
  const first: unknown = Array.isArray(messages) ? messages[0] : undefined;
  if (typeof first !== 'object' || first === null) return null;
  const { role, content } = first as { role?: unknown; content?: unknown };
  return role === 'system' && typeof content === 'string' ? content : null;
}

/**
 * One upload in progress: bytes are written to the incoming folder and checked as they come. `finish` stores
 * it (or refuses it), `abort` removes every trace of it.
 */
export class Upload {
  private readonly checker: DatasetStreamChecker;
  private readonly systemPrompt = new SharedSystemPrompt();
  private readonly errors: DatasetFinding[] = [];
  private readonly warnings: DatasetFinding[] = [];
  private total = 0;
  private bytes = 0;
  private done = false;
  private removed = false;
  /** Bytes since the last newline, and the 1-based number of the line they belong to. */
  private lineBytes = 0;
  private lineNumber = 1;

  constructor(
    private readonly store: FileStore,
    readonly id: string,
    private readonly folder: string,
    private readonly handle: FileHandle,
    private readonly maxBytes: number,
    private readonly maxLineBytes: number,
  ) {
    this.checker = new DatasetStreamChecker({
      onFinding: (f) => {
        this.total++;
        // Errors are what refuses a file, so they are reported first; warnings fill what room is left.
        const list = f.severity === 'error' ? this.errors : this.warnings;
        if (list.length < MAX_REPORTED_FINDINGS) list.push(toFinding(f));
      },
      onLine: (buf, start, end, _line, check) => {
        if (check.kind === 'example') this.systemPrompt.example(buf, start, end);
      },
    });
  }

  /** Writes and checks the next bytes; throws `too_large` past the limit (nothing more is written). */
  async write(chunk: Buffer): Promise<void> {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) throw new UploadError('too_large', `The file is larger than the limit of ${this.maxBytes} bytes.`);
    this.countLines(chunk);
    this.checker.push(chunk);
    await this.handle.write(chunk);
  }

  private countLines(chunk: Buffer): void {
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
      this.lineNumber++;
      this.lineBytes = 0;
      from = nl + 1;
    }
    this.lineBytes += chunk.length - from;
    if (this.lineBytes > this.maxLineBytes) {
      throw new UploadError('line_too_long', `Line ${this.lineNumber} is longer than ${this.maxLineBytes} bytes; a dataset has one example (one JSON object) per line.`);
    }
  }

  /** Ends the check; stores the file when it has no error, else removes it and throws `invalid_dataset`. */
  async finish(owner: Owner, filename: string | undefined): Promise<FileObject> {
    const summary: FileSummary = this.checker.end();
    if (summary.errors > 0) {
      await this.abort();
      const findings = [...this.errors, ...this.warnings].slice(0, MAX_REPORTED_FINDINGS);
      throw new UploadError(
        'invalid_dataset',
        `The file has ${summary.errors} error${summary.errors === 1 ? '' : 's'} (${this.total} finding${this.total === 1 ? '' : 's'} in all); the first is at line ${this.errors[0].line}, column ${this.errors[0].column}: ${this.errors[0].message}`,
        findings,
        this.total,
      );
    }
    await this.handle.sync();
    await this.handle.close();
    this.done = true;
    const now = Date.now();
    const meta: FileMeta = {
      id: this.id,
      owner,
      filename: cleanFilename(filename),
      bytes: this.bytes,
      created_at: Math.floor(now / 1000),
      created_ms: now,
      examples: summary.examples,
      warnings: summary.warnings,
      system_prompt: this.systemPrompt.value,
    };
    return this.store.commit(this.folder, meta);
  }

  /** Removes the upload (the client went away, or it was refused). Safe to call twice. */
  async abort(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    if (!this.done) {
      this.done = true;
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.folder, { recursive: true, force: true });
    this.store.dropped(this.id, this.bytes);
  }
}

/** The uploaded files of every owner. */
export class FileStore {
  /** Oldest first. */
  private readonly files: FileMeta[] = [];
  private readonly byId = new Map<string, FileMeta>();

  private constructor(
    private readonly root: string,
    private readonly log: Log,
  ) {}

  /** Opens (creating) `{dataDir}/files/`: indexes the stored files and clears what crashed uploads left. */
  static async open(dataDir: string, log: Log): Promise<FileStore> {
    const store = new FileStore(join(dataDir, 'files'), log);
    await rm(store.incoming, { recursive: true, force: true });
    await rm(store.trash, { recursive: true, force: true });
    await mkdir(store.incoming, { recursive: true });
    const metas: FileMeta[] = [];
    for (const name of await readdir(store.root)) {
      if (!isIdOf('file', name)) continue;
      try {
        const meta = JSON.parse(await readFile(join(store.root, name, 'meta.json'), 'utf8')) as FileMeta;
        if (meta.id !== name || typeof meta.owner !== 'string') throw new Error('the record does not match its folder');
        metas.push(meta);
      } catch (error) {
        log.warn(`files: skipping ${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    metas.sort((a, b) => a.created_ms - b.created_ms || (a.id < b.id ? -1 : 1));
    for (const meta of metas) store.add(meta);
    return store;
  }

  private get incoming(): string {
    return join(this.root, '.incoming');
  }

  private get trash(): string {
    return join(this.root, '.trash');
  }

  private add(meta: FileMeta): void {
    this.files.push(meta);
    this.byId.set(meta.id, meta);
  }

  /** Starts an upload of at most `maxBytes`, with lines of at most `maxLineBytes`. */
  async begin(maxBytes: number, maxLineBytes = MAX_LINE_BYTES): Promise<Upload> {
    const id = newId('file');
    const folder = join(this.incoming, id);
    await mkdir(folder, { recursive: true });
    const handle = await open(join(folder, 'content.jsonl'), 'wx');
    return new Upload(this, id, folder, handle, maxBytes, maxLineBytes);
  }

  /** Writes the record and moves the finished folder into place (one rename: all or nothing). */
  async commit(folder: string, meta: FileMeta): Promise<FileObject> {
    const record = await open(join(folder, 'meta.json'), 'wx');
    try {
      await record.writeFile(JSON.stringify(meta));
      await record.sync();
    } finally {
      await record.close();
    }
    await rename(folder, join(this.root, meta.id));
    this.add(meta);
    this.log.info(`files: stored ${meta.id} (${meta.bytes} bytes, ${meta.examples} examples) for ${meta.owner.slice(0, 8)}`);
    return toObject(meta);
  }

  /** Logs an upload that was not kept (tests wait for this line to know the folder is gone). */
  dropped(id: string, bytes: number): void {
    this.log.info(`files: dropped upload ${id} after ${bytes} bytes`);
  }

  /** The owner's file with that id (undefined for a malformed id, a missing file, or another owner's). */
  get(owner: Owner, id: string): FileObject | undefined {
    const meta = this.meta(owner, id);
    return meta && toObject(meta);
  }

  /** The path of the content of the owner's file. */
  contentPath(owner: Owner, id: string): string | undefined {
    return this.meta(owner, id) && join(this.root, id, 'content.jsonl');
  }

  private meta(owner: Owner, id: string): FileMeta | undefined {
    if (!isIdOf('file', id)) return undefined;
    const meta = this.byId.get(id);
    return meta?.owner === owner ? meta : undefined;
  }

  /** The owner's files, newest first, from after the file `after` (undefined: an unknown `after`). */
  list(owner: Owner, after: string | undefined, limit: number): Page<FileObject> | undefined {
    const mine = this.files.filter((f) => f.owner === owner).reverse();
    let start = 0;
    if (after !== undefined) {
      const at = mine.findIndex((f) => f.id === after);
      if (at < 0) return undefined;
      start = at + 1;
    }
    return { data: mine.slice(start, start + limit).map(toObject), has_more: mine.length > start + limit };
  }

  /** Deletes the owner's file; false when there is none. The folder leaves the store in one rename. */
  async delete(owner: Owner, id: string): Promise<boolean> {
    const meta = this.meta(owner, id);
    if (!meta) return false;
    this.byId.delete(id);
    this.files.splice(this.files.indexOf(meta), 1);
    await mkdir(this.trash, { recursive: true });
    const gone = join(this.trash, `${id}-${randomBytes(4).toString('hex')}`);
    await rename(join(this.root, id), gone);
    await rm(gone, { recursive: true, force: true });
    this.log.info(`files: deleted ${id}`);
    return true;
  }
}

function toObject(meta: FileMeta): FileObject {
  return {
    id: meta.id,
    object: 'file',
    bytes: meta.bytes,
    created_at: meta.created_at,
    filename: meta.filename,
    purpose: 'fine-tune',
    status: 'processed',
    examples: meta.examples,
    warnings: meta.warnings,
    // Records from before the prompt was kept have none: the field stays absent rather than a guessed null.
    ...(meta.system_prompt !== undefined ? { system_prompt: meta.system_prompt } : {}),
  };
}
