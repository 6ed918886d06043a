import { msg, type Message, type MessageArg } from '../i18n/messages';
import { finding, type FindingCode, type LineFinding } from './codes';
import { specialBytes } from './kernel';

/**
 * The checks of one dataset line (the rules of common/dataset, issue 2): a hand-written JSON scanner that
 * works on the line's UTF-8 bytes and decodes only what it reports on. It validates JSON exactly (what
 * `JSON.parse` accepts) and, on the way, reads the shape that matters: the top-level keys, the `messages`
 * array and each message's role, content and weight. Nothing here allocates per byte; findings are rare.
 *
 * Precedence (so that one mistake gives one finding): `json-syntax`, `not-object`, `messages-missing` and
 * `messages-empty` end the checks of a line; where a message is invalid or has an unknown role, the order
 * checks (`no-pair`, `role-order`) are skipped. The order checks look at user and assistant messages only.
 */

/** What kind of line it was. */
export type LineKind = 'blank' | 'example' | 'broken';

/** The result of checking one line on its own (file-wide codes such as `duplicate` are added elsewhere). */
export interface LineCheck {
  /** `blank`: empty or white space; `example`: an object with a non-empty `messages` array; `broken`: other. */
  readonly kind: LineKind;
  /** Findings sorted by column; columns are UTF-16 code units from the start of the line. */
  readonly findings: readonly LineFinding[];
  /** How many of the findings are errors. */
  readonly errors: number;
  /** Entries in `messages` (0 when there is no array). */
  readonly messages: number;
}

/** Role of a message as the scanner classifies it. */
export enum Role {
  /** No string role (the message is invalid). */
  Missing = 0,
  System = 1,
  User = 2,
  Assistant = 3,
  /** A string role that is not one of the three. */
  Unknown = 4,
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

const KEY_OTHER = 0;
const KEY_MESSAGES = 1;
const KEY_ROLE = 2;
const KEY_CONTENT = 3;
const KEY_WEIGHT = 4;
const KEY_NAME = 5;

const EMPTY: readonly LineFinding[] = Object.freeze([]);
const NOTHING_LACKING = Object.freeze([]) as unknown as Message[];
const BLANK: LineCheck = Object.freeze({ kind: 'blank', findings: EMPTY, errors: 0, messages: 0 });

/** Thrown inside the scanner on the first JSON syntax error; caught in `check`. */
class SyntaxFailure {
  constructor(
    readonly pos: number,
    readonly message: Message,
  ) {}
}

interface PendingFinding {
  code: FindingCode;
  message: Message;
  /** Byte offsets in the buffer; converted to UTF-16 columns once the line is done. */
  start: number;
  end: number;
}

const decoder = new TextDecoder();

// The phrases that describe values and bytes, made once: a message holds them as arguments.
const END_OF_LINE = msg('byte/end-of-line');
const VALUE_OBJECT = msg('value/object');
const VALUE_ARRAY = msg('value/array');
const VALUE_STRING = msg('value/string');
const VALUE_BOOLEAN = msg('value/boolean');
const VALUE_NULL = msg('value/null');
const VALUE_NUMBER = msg('value/number');
const EXPECT_PROPERTY_NAME = msg('expect/property-name');
const EXPECT_COLON = msg('expect/colon');
const EXPECT_AFTER_VALUE = msg('expect/comma-or-brace-after-value');
const encoder = new TextEncoder();

/**
 * UTF-16 length of a UTF-8 byte range: one unit per character, two for a 4-byte sequence (a surrogate pair),
 * which is how editors count columns.
 */
export function utf16Length(buf: Uint8Array, start: number, end: number): number {
  let n = 0;
  for (let p = start; p < end; p++) {
    const c = buf[p];
    if ((c & 0xc0) !== 0x80) n += c >= 0xf0 ? 2 : 1;
  }
  return n;
}

/** Printable form of a byte for messages: the character, or its hex code. */
function describeByte(buf: Uint8Array, pos: number, end: number): MessageArg {
  if (pos >= end) return END_OF_LINE;
  const c = buf[pos];
  if (c < 0x20 || c === 0x7f) return msg('byte/control', c.toString(16).padStart(4, '0').toUpperCase());
  if (c < 0x80) return `'${String.fromCharCode(c)}'`;
  let n = pos + 1;
  while (n < end && n < pos + 4 && (buf[n] & 0xc0) === 0x80) n++;
  return `'${decoder.decode(buf.subarray(pos, n))}'`;
}

/**
 * Checks dataset lines. One instance reuses its scratch arrays across lines, so create one per caller
 * (it is not re-entrant) and call `check` for every line.
 */
export class LineChecker {
  private buf: Uint8Array = new Uint8Array(0);
  /** A view of `buf` for reading four bytes at once; rebuilt only when `buf` changes (once per chunk). */
  private view: DataView = new DataView(new ArrayBuffer(0));
  private viewOf: Uint8Array | undefined;
  /** The line's quotes, backslashes and control bytes (offsets from `lineStart`), when the kernel listed them. */
  private specials: Int32Array | undefined;
  private specialCount = 0;
  /** The first of `specials` that the scan has not passed yet. */
  private special = 0;
  private pos = 0;
  private end = 0;
  private stack: Uint8Array = new Uint8Array(64);
  private pending: PendingFinding[] = [];

  // Per message of the current line, parallel arrays (grown on demand).
  private count = 0;
  private role: Uint8Array = new Uint8Array(16);
  private roleStart: Int32Array = new Int32Array(16);
  private roleEnd: Int32Array = new Int32Array(16);
  private objStart: Int32Array = new Int32Array(16);
  private objEnd: Int32Array = new Int32Array(16);
  private invalid = false;
  private lineStart = 0;
  private messagesKeyStart = 0;
  private messagesKeyEnd = 0;

  private textBuf: Uint8Array = new Uint8Array(1024);

  /** Checks one line given as text (as the editor holds it). */
  checkText(text: string, firstLine = false): LineCheck {
    if (text.length === 0) return BLANK;
    // Worst case 3 bytes per UTF-16 unit.
    if (this.textBuf.length < text.length * 3) this.textBuf = new Uint8Array(Math.max(text.length * 3, this.textBuf.length * 2));
    const { written } = encoder.encodeInto(text, this.textBuf);
    return this.check(this.textBuf, 0, written, firstLine);
  }

  /**
   * Checks the line `buf[start, end)` (no line terminator; a trailing `\r` is white space). On the first line
   * of a file, a UTF-8 byte order mark is skipped but still counts as one column, as in the editor.
   */
  check(buf: Uint8Array, start: number, end: number, firstLine = false): LineCheck {
    this.buf = buf;
    if (buf !== this.viewOf) {
      this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      this.viewOf = buf;
    }
    this.end = end;
    this.lineStart = start;
    let pos = start;
    if (firstLine && end - start >= 3 && buf[pos] === 0xef && buf[pos + 1] === 0xbb && buf[pos + 2] === 0xbf) pos += 3;
    this.pos = pos;
    this.skipWs();
    if (this.pos >= end) return BLANK;
    this.pending.length = 0;
    this.count = 0;
    this.invalid = false;
    const listed = specialBytes(buf, start, end);
    this.specials = listed?.positions;
    this.specialCount = listed ? listed.count : 0;
    this.special = 0;
    let kind: LineKind;
    try {
      kind = this.scanLine();
    } catch (failure) {
      if (!(failure instanceof SyntaxFailure)) throw failure;
      this.pending.length = 0;
      this.count = 0;
      // The failing character; at the end of the line, its last character.
      const at = Math.max(start, Math.min(failure.pos, end - 1));
      this.pending.push({ code: 'json-syntax', message: failure.message, start: at, end: at + 1 });
      kind = 'broken';
    }
    const messages = this.count;
    if (this.pending.length === 0) return { kind, findings: EMPTY, errors: 0, messages };
    const findings = this.resolve(start);
    let errors = 0;
    for (const f of findings) if (f.severity === 'error') errors++;
    return { kind, findings, errors, messages };
  }

  /** Converts pending byte ranges to UTF-16 columns in one forward pass over the line. */
  private resolve(lineStart: number): LineFinding[] {
    const pending = this.pending;
    pending.sort((a, b) => a.start - b.start || a.end - b.end);
    const offsets: number[] = [];
    for (const p of pending) offsets.push(p.start, p.end);
    const sorted = offsets.map((o, i) => [o, i] as const).sort((a, b) => a[0] - b[0]);
    const columns = new Array<number>(offsets.length);
    const buf = this.buf;
    let pos = lineStart;
    let col = 0;
    for (const [offset, index] of sorted) {
      while (pos < offset) {
        const c = buf[pos++];
        // A UTF-8 lead byte starts a character; a 4-byte sequence is two UTF-16 units.
        if ((c & 0xc0) !== 0x80) col += c >= 0xf0 ? 2 : 1;
      }
      columns[index] = col;
    }
    return pending.map((p, i) => finding(p.code, p.message, columns[2 * i], columns[2 * i + 1]));
  }

  private add(code: FindingCode, message: Message, start: number, end: number): void {
    this.pending.push({ code, message, start, end });
  }

  private fail(detail: Message, pos = this.pos): never {
    throw new SyntaxFailure(pos, msg('json-syntax', this.column(pos), detail));
  }

  /** 1-based column of a byte offset, for messages (computed only on failure). */
  private column(pos: number): number {
    return utf16Length(this.buf, this.lineStart, pos) + 1;
  }

  /** The byte at `pos`, or -1 at the end of the line (bytes past `end` belong to someone else). */
  private peek(): number {
    return this.pos < this.end ? this.buf[this.pos] : -1;
  }

  private unexpected(expected: MessageArg): never {
    if (this.pos >= this.end) this.fail(msg('json-syntax/ends-early', expected));
    this.fail(msg('json-syntax/expected-found', expected, describeByte(this.buf, this.pos, this.end)));
  }

  private skipWs(): void {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    while (pos < end) {
      const c = buf[pos];
      if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) break;
      pos++;
    }
    this.pos = pos;
  }

  private scanLine(): LineKind {
    const buf = this.buf;
    const valueStart = this.pos;
    if (buf[this.pos] !== LBRACE) {
      this.skipValue();
      const valueEnd = this.pos;
      this.expectEnd();
      this.add('not-object', msg('not-object', this.describeValue(valueStart)), valueStart, valueEnd);
      return 'broken';
    }
    this.pos++;
    this.skipWs();
    let messagesFound = false;
    let messagesValueStart = -1;
    let messagesValueEnd = -1;
    let messagesIsArray = false;
    const unknownKeys: number[] = [];
    if (this.peek() === RBRACE) {
      this.pos++;
    } else {
      for (;;) {
        if (this.peek() !== QUOTE) this.unexpected(EXPECT_PROPERTY_NAME);
        const keyStart = this.pos;
        const key = this.scanKey();
        const keyEnd = this.pos;
        this.skipWs();
        if (this.peek() !== COLON) this.unexpected(EXPECT_COLON);
        this.pos++;
        this.skipWs();
        if (key === KEY_MESSAGES) {
          // JSON.parse keeps the last of duplicate keys; so do we.
          messagesFound = true;
          this.messagesKeyStart = keyStart;
          this.messagesKeyEnd = keyEnd;
          messagesValueStart = this.pos;
          if (this.peek() === LBRACKET) {
            this.scanMessages();
            messagesIsArray = true;
          } else {
            this.skipValue();
            messagesIsArray = false;
          }
          messagesValueEnd = this.pos;
        } else {
          unknownKeys.push(keyStart, keyEnd);
          this.skipValue();
        }
        this.skipWs();
        const c = this.peek();
        if (c === COMMA) {
          this.pos++;
          this.skipWs();
          continue;
        }
        if (c === RBRACE) {
          this.pos++;
          break;
        }
        this.unexpected(EXPECT_AFTER_VALUE);
      }
    }
    this.expectEnd();
    // The line is valid JSON from here on: report its shape.
    if (!messagesFound) {
      this.pending.length = 0;
      this.count = 0;
      this.add('messages-missing', msg('messages-missing'), valueStart, this.pos);
      return 'broken';
    }
    if (!messagesIsArray) {
      this.pending.length = 0;
      this.count = 0;
      this.add('messages-missing', msg('messages-missing/not-array', this.describeValue(messagesValueStart)), messagesValueStart, messagesValueEnd);
      return 'broken';
    }
    if (this.count === 0) {
      this.pending.length = 0;
      this.add('messages-empty', msg('messages-empty'), messagesValueStart, messagesValueEnd);
      return 'broken';
    }
    for (let i = 0; i < unknownKeys.length; i += 2) {
      const name = this.decodeString(unknownKeys[i], unknownKeys[i + 1]);
      this.add('key-unknown', msg('key-unknown', JSON.stringify(name)), unknownKeys[i], unknownKeys[i + 1]);
    }
    this.orderChecks();
    return 'example';
  }

  /** After the line's value: only white space may follow. */
  private expectEnd(): void {
    this.skipWs();
    if (this.pos < this.end) this.fail(msg('json-syntax/after-end', describeByte(this.buf, this.pos, this.end)));
  }

  private scanMessages(): void {
    this.pos++;
    this.skipWs();
    this.count = 0;
    if (this.peek() === RBRACKET) {
      this.pos++;
      return;
    }
    for (;;) {
      const index = this.count++;
      this.ensureCapacity(this.count);
      const start = this.pos;
      if (this.peek() === LBRACE) {
        this.scanMessage(index);
      } else {
        this.skipValue();
        this.role[index] = Role.Missing;
        this.invalid = true;
        this.add('message-invalid', msg('message-invalid', index + 1, this.describeValue(start)), start, this.pos);
      }
      this.objStart[index] = start;
      this.objEnd[index] = this.pos;
      this.skipWs();
      const c = this.peek();
      if (c === COMMA) {
        this.pos++;
        this.skipWs();
        continue;
      }
      if (c === RBRACKET) {
        this.pos++;
        return;
      }
      this.unexpected(msg('expect/comma-or-bracket-after-message'));
    }
  }

  private ensureCapacity(n: number): void {
    if (n <= this.role.length) return;
    const size = Math.max(n, this.role.length * 2);
    const grow8 = (a: Uint8Array): Uint8Array => {
      const b = new Uint8Array(size);
      b.set(a);
      return b;
    };
    const grow32 = (a: Int32Array): Int32Array => {
      const b = new Int32Array(size);
      b.set(a);
      return b;
    };
    this.role = grow8(this.role);
    this.roleStart = grow32(this.roleStart);
    this.roleEnd = grow32(this.roleEnd);
    this.objStart = grow32(this.objStart);
    this.objEnd = grow32(this.objEnd);
  }

  private scanMessage(index: number): void {
    const objStart = this.pos;
    this.pos++;
    this.skipWs();
    let role = Role.Missing;
    let roleSeen = false;
    let roleStart = -1;
    let roleEnd = -1;
    let contentSeen = false;
    let contentString = false;
    let contentStart = -1;
    let contentEnd = -1;
    let contentEmpty = false;
    let weightStart = -1;
    let weightEnd = -1;
    let unknownKeys: number[] | undefined;
    if (this.peek() === RBRACE) {
      this.pos++;
    } else {
      for (;;) {
        if (this.peek() !== QUOTE) this.unexpected(EXPECT_PROPERTY_NAME);
        const keyStart = this.pos;
        const key = this.scanKey();
        const keyEnd = this.pos;
        this.skipWs();
        if (this.peek() !== COLON) this.unexpected(EXPECT_COLON);
        this.pos++;
        this.skipWs();
        const valueStart = this.pos;
        switch (key) {
          case KEY_ROLE:
            roleSeen = true;
            roleStart = valueStart;
            if (this.peek() === QUOTE) {
              const escaped = this.scanString();
              role = this.classifyRole(valueStart + 1, this.pos - 1, escaped);
            } else {
              this.skipValue();
              role = Role.Missing;
            }
            roleEnd = this.pos;
            break;
          case KEY_CONTENT:
            contentSeen = true;
            contentStart = valueStart;
            if (this.peek() === QUOTE) {
              const escaped = this.scanString();
              contentString = true;
              contentEmpty = this.isBlankString(valueStart + 1, this.pos - 1, escaped);
            } else {
              this.skipValue();
              contentString = false;
            }
            contentEnd = this.pos;
            break;
          case KEY_WEIGHT:
            weightStart = valueStart;
            this.skipValue();
            weightEnd = this.pos;
            break;
          case KEY_NAME:
            this.skipValue();
            break;
          default:
            (unknownKeys ??= []).push(keyStart, keyEnd);
            this.skipValue();
        }
        this.skipWs();
        const c = this.peek();
        if (c === COMMA) {
          this.pos++;
          this.skipWs();
          continue;
        }
        if (c === RBRACE) {
          this.pos++;
          break;
        }
        this.unexpected(EXPECT_AFTER_VALUE);
      }
    }
    const objEnd = this.pos;
    const n = index + 1;
    this.role[index] = role;
    this.roleStart[index] = roleStart;
    this.roleEnd[index] = roleEnd;

    // message-invalid: one finding per entry, naming everything it lacks. (The list is allocated only for such
    // an entry: this runs for every message of a file.)
    const lacks: Message[] = role === Role.Missing || !contentString ? [] : NOTHING_LACKING;
    if (!roleSeen) lacks.push(msg('message-invalid/no-role'));
    else if (role === Role.Missing) lacks.push(msg('message-invalid/role-is', this.describeValue(roleStart)));
    if (!contentSeen) lacks.push(msg('message-invalid/no-content'));
    else if (!contentString) lacks.push(msg('message-invalid/content-is', this.describeValue(contentStart)));
    if (lacks.length > 0) {
      this.invalid = true;
      // Narrowest range: the offending value when there is one, else the message object.
      let start = objStart;
      let end = objEnd;
      if (roleSeen && contentSeen) {
        if (role === Role.Missing && contentString) [start, end] = [roleStart, roleEnd];
        else if (role !== Role.Missing && !contentString) [start, end] = [contentStart, contentEnd];
      }
      const lack = lacks.length === 1 ? lacks[0] : msg('message-invalid/and', lacks[0], lacks[1]);
      this.add('message-invalid', msg('message-invalid/lacks', n, lack), start, end);
    } else if (role === Role.Unknown) {
      this.invalid = true;
      const name = this.decodeString(roleStart, roleEnd);
      this.add('role-unknown', msg('role-unknown', JSON.stringify(name), n), roleStart, roleEnd);
    }

    if (weightStart >= 0) this.checkWeight(n, role, weightStart, weightEnd);
    if (contentString && contentEmpty) {
      this.add('content-empty', msg(role === Role.Assistant ? 'content-empty/assistant' : 'content-empty', n), contentStart, contentEnd);
    }
    if (unknownKeys) {
      for (let i = 0; i < unknownKeys.length; i += 2) {
        const name = this.decodeString(unknownKeys[i], unknownKeys[i + 1]);
        this.add('key-unknown', msg('key-unknown/message', JSON.stringify(name), n), unknownKeys[i], unknownKeys[i + 1]);
      }
    }
  }

  private checkWeight(n: number, role: Role, start: number, end: number): void {
    const text = decoder.decode(this.buf.subarray(start, end));
    const c = this.buf[start];
    const isNumber = c === 0x2d || (c >= 0x30 && c <= 0x39);
    const value = isNumber ? Number(text) : NaN;
    if (role !== Role.Assistant && role !== Role.Missing && role !== Role.Unknown) {
      this.add('weight-invalid', msg('weight-invalid', role === Role.System ? 'system' : 'user', n), start, end);
    } else if (value !== 0 && value !== 1) {
      this.add('weight-invalid', msg('weight-invalid/value', text.length > 40 ? text.slice(0, 40) + '…' : text, n), start, end);
    }
  }

  private orderChecks(): void {
    const n = this.count;
    const role = this.role;
    for (let i = 1; i < n; i++) {
      if (role[i] === Role.System) {
        this.add('system-not-first', msg('system-not-first', i + 1), this.roleStart[i], this.roleEnd[i]);
      }
    }
    if (this.invalid) return;
    let users = 0;
    let assistants = 0;
    for (let i = 0; i < n; i++) {
      if (role[i] === Role.User) users++;
      else if (role[i] === Role.Assistant) assistants++;
    }
    if (users === 0 || assistants === 0) {
      const id = users === 0 && assistants === 0 ? 'no-pair' : users === 0 ? 'no-pair/no-user' : 'no-pair/no-assistant';
      this.add('no-pair', msg(id), this.messagesKeyStart, this.messagesKeyEnd);
      return;
    }
    let expect = Role.User;
    let last = -1;
    for (let i = 0; i < n; i++) {
      const r = role[i];
      if (r !== Role.User && r !== Role.Assistant) continue;
      if (r !== expect) {
        const found = r === Role.User ? 'user' : 'assistant';
        const wanted = expect === Role.User ? 'user' : 'assistant';
        const why = last < 0 ? msg('role-order/starts-with-user') : msg(found === 'user' ? 'role-order/user-too' : 'role-order/assistant-too', last + 1);
        this.add('role-order', msg('role-order', i + 1, found, wanted, why), this.roleStart[i], this.roleEnd[i]);
        return;
      }
      expect = r === Role.User ? Role.Assistant : Role.User;
      last = i;
    }
    if (role[last] === Role.User) {
      this.add('role-order', msg('role-order/ends-with-user', last + 1), this.roleStart[last], this.roleEnd[last]);
    }
  }

  /** Scans a key string at `pos` and says which key it is. */
  private scanKey(): number {
    const start = this.pos + 1;
    const escaped = this.scanString();
    const end = this.pos - 1;
    if (escaped) return this.keyId(JSON.parse(decoder.decode(this.buf.subarray(start - 1, end + 1))) as string);
    const buf = this.buf;
    const len = end - start;
    // Byte comparisons against the known keys; the common case never builds a string.
    switch (len) {
      case 4:
        if (buf[start] === 0x72 && buf[start + 1] === 0x6f && buf[start + 2] === 0x6c && buf[start + 3] === 0x65) return KEY_ROLE;
        if (buf[start] === 0x6e && buf[start + 1] === 0x61 && buf[start + 2] === 0x6d && buf[start + 3] === 0x65) return KEY_NAME;
        return KEY_OTHER;
      case 6:
        return matches(buf, start, WEIGHT) ? KEY_WEIGHT : KEY_OTHER;
      case 7:
        return matches(buf, start, CONTENT) ? KEY_CONTENT : KEY_OTHER;
      case 8:
        return matches(buf, start, MESSAGES) ? KEY_MESSAGES : KEY_OTHER;
      default:
        return KEY_OTHER;
    }
  }

  private keyId(key: string): number {
    switch (key) {
      case 'messages':
        return KEY_MESSAGES;
      case 'role':
        return KEY_ROLE;
      case 'content':
        return KEY_CONTENT;
      case 'weight':
        return KEY_WEIGHT;
      case 'name':
        return KEY_NAME;
      default:
        return KEY_OTHER;
    }
  }

  private classifyRole(start: number, end: number, escaped: boolean): Role {
    const buf = this.buf;
    if (escaped) {
      const s = JSON.parse(decoder.decode(buf.subarray(start - 1, end + 1))) as string;
      return s === 'system' ? Role.System : s === 'user' ? Role.User : s === 'assistant' ? Role.Assistant : Role.Unknown;
    }
    switch (end - start) {
      case 4:
        return matches(buf, start, USER) ? Role.User : Role.Unknown;
      case 6:
        return matches(buf, start, SYSTEM) ? Role.System : Role.Unknown;
      case 9:
        return matches(buf, start, ASSISTANT) ? Role.Assistant : Role.Unknown;
      default:
        return Role.Unknown;
    }
  }

  /** Whether a string's content (between its quotes) is empty or only white space, as `trim()` sees it. */
  private isBlankString(start: number, end: number, escaped: boolean): boolean {
    const buf = this.buf;
    let special = false;
    for (let p = start; p < end; p++) {
      const c = buf[p];
      if (c === 0x20) continue;
      if (c < 0x80 && c !== BACKSLASH) return false;
      // Most contents start with a CJK or other non-ASCII character: decide on its bytes rather than decode the
      // whole string (decoding every content was most of the check's time on Chinese datasets).
      if (c >= 0x80 && !mayBeSpace(buf, p, end)) return false;
      // An escape that cannot be white space (\" \\ \/ \b) also decides it.
      if (c === BACKSLASH && p + 1 < end && (buf[p + 1] === QUOTE || buf[p + 1] === BACKSLASH || buf[p + 1] === 0x2f || buf[p + 1] === 0x62)) return false;
      special = true;
      break;
    }
    if (!special) return true;
    const text = escaped ? (JSON.parse(decoder.decode(buf.subarray(start - 1, end + 1))) as string) : decoder.decode(buf.subarray(start, end));
    return text.trim().length === 0;
  }

  /** Decodes a JSON string token (with its quotes) at [start, end) for a message. */
  private decodeString(start: number, end: number): string {
    const raw = decoder.decode(this.buf.subarray(start, end));
    try {
      const value: unknown = JSON.parse(raw);
      return typeof value === 'string' ? value : raw;
    } catch {
      return raw;
    }
  }

  /** A short description of the JSON value starting at `pos`: "an array", "a number (3)", … */
  private describeValue(pos: number): Message {
    switch (this.buf[pos]) {
      case LBRACE:
        return VALUE_OBJECT;
      case LBRACKET:
        return VALUE_ARRAY;
      case QUOTE:
        return VALUE_STRING;
      case 0x74:
      case 0x66:
        return VALUE_BOOLEAN;
      case 0x6e:
        return VALUE_NULL;
      default:
        return VALUE_NUMBER;
    }
  }

  /**
   * Scans a string token at `pos` (on its opening quote) to just past its closing quote. Returns whether it
   * holds escapes. Raw control characters are errors, as in JSON.
   */
  private scanString(): boolean {
    if (this.specials !== undefined) {
      const escaped = this.scanListedString();
      if (escaped >= 0) return escaped === 1;
    }
    const buf = this.buf;
    const view = this.view;
    const end = this.end;
    let p = this.pos + 1;
    let escaped = false;
    for (;;) {
      // Four bytes at a time while none is a quote, a backslash or a control character: string content is most
      // of a line's bytes, and this loop is about twice as fast as the byte loop below on such runs.
      while (p + 4 <= end) {
        const v = view.getInt32(p, true);
        // Flipping bit 1 maps a quote (0x22) to 0x20 and keeps bytes below 0x20 below it, so one test finds
        // both: the first term is non-zero exactly when some byte of v is a quote or below 0x20, the second
        // when some byte is a backslash.
        const q = v ^ 0x02020202;
        const b = v ^ 0x5c5c5c5c;
        if ((((q - 0x21212121) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) break;
        p += 4;
      }
      if (p >= end) {
        this.pos = p;
        this.fail(msg('json-syntax/unterminated-string'));
      }
      const c = buf[p];
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        escaped = true;
        const e = buf[p + 1];
        if (e === 0x75) {
          for (let k = 2; k < 6; k++) {
            const h = p + k < end ? buf[p + k] : -1;
            const hex = (h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66);
            if (!hex) this.fail(msg('json-syntax/hex-digits'), p);
          }
          p += 6;
          continue;
        }
        if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          p += 2;
          continue;
        }
        this.fail(p + 1 >= end ? msg('json-syntax/escape-ends') : msg('json-syntax/escape-invalid', String.fromCharCode(e)), p);
      }
      if (c < 0x20) this.fail(msg('json-syntax/control-in-string', describeByte(buf, p, end)), p);
      p++;
    }
    this.pos = p + 1;
    return escaped;
  }

  /**
   * `scanString` for a valid string, jumping from one listed special byte to the next. Returns 1 or 0 (whether
   * it holds escapes), or -1 to leave the string to the byte loop, which then reports what is wrong with it
   * (a control character, a bad escape, no closing quote) exactly as without the list.
   */
  private scanListedString(): number {
    const specials = this.specials!;
    const count = this.specialCount;
    const buf = this.buf;
    const end = this.end;
    const base = this.lineStart;
    let k = this.special;
    let p = this.pos + 1;
    let escaped = 0;
    for (;;) {
      while (k < count && specials[k] + base < p) k++;
      if (k >= count) return -1;
      const at = specials[k] + base;
      const c = buf[at];
      if (c === QUOTE) {
        this.pos = at + 1;
        this.special = k + 1;
        return escaped;
      }
      if (c !== BACKSLASH || at + 1 >= end) return -1;
      const e = buf[at + 1];
      if (e === 0x75) {
        if (at + 5 >= end) return -1;
        for (let h = at + 2; h < at + 6; h++) {
          const d = buf[h];
          if (!((d >= 0x30 && d <= 0x39) || (d >= 0x41 && d <= 0x46) || (d >= 0x61 && d <= 0x66))) return -1;
        }
        p = at + 6;
      } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        p = at + 2;
      } else {
        return -1;
      }
      escaped = 1;
    }
  }

  private scanNumber(): void {
    const buf = this.buf;
    const end = this.end;
    let p = this.pos;
    if (buf[p] === 0x2d) p++;
    if (p < end && buf[p] === 0x30) {
      p++;
    } else if (p < end && buf[p] >= 0x31 && buf[p] <= 0x39) {
      while (p < end && buf[p] >= 0x30 && buf[p] <= 0x39) p++;
    } else {
      this.pos = p;
      this.unexpected(msg('expect/digit'));
    }
    if (p < end && buf[p] === 0x2e) {
      p++;
      if (!(p < end && buf[p] >= 0x30 && buf[p] <= 0x39)) {
        this.pos = p;
        this.unexpected(msg('expect/digit-after-dot'));
      }
      while (p < end && buf[p] >= 0x30 && buf[p] <= 0x39) p++;
    }
    if (p < end && (buf[p] === 0x65 || buf[p] === 0x45)) {
      p++;
      if (p < end && (buf[p] === 0x2b || buf[p] === 0x2d)) p++;
      if (!(p < end && buf[p] >= 0x30 && buf[p] <= 0x39)) {
        this.pos = p;
        this.unexpected(msg('expect/digit-in-exponent'));
      }
      while (p < end && buf[p] >= 0x30 && buf[p] <= 0x39) p++;
    }
    this.pos = p;
  }

  private scanLiteral(word: Uint8Array): void {
    const buf = this.buf;
    for (let k = 0; k < word.length; k++) {
      if (this.pos + k >= this.end || buf[this.pos + k] !== word[k]) {
        this.pos += k;
        this.unexpected(`'${decoder.decode(word)}'`);
      }
    }
    this.pos += word.length;
  }

  /**
   * Skips any JSON value at `pos`, validating it. Iterative with an explicit stack, so that deeply nested
   * input cannot overflow the call stack.
   */
  private skipValue(): void {
    const buf = this.buf;
    let depth = 0;
    for (;;) {
      // A value is expected here.
      this.skipWs();
      const c = this.pos < this.end ? buf[this.pos] : -1;
      if (c === LBRACE || c === LBRACKET) {
        this.pos++;
        this.skipWs();
        const close = c === LBRACE ? RBRACE : RBRACKET;
        if (buf[this.pos] === close && this.pos < this.end) {
          this.pos++;
        } else {
          if (depth === this.stack.length) {
            const grown = new Uint8Array(this.stack.length * 2);
            grown.set(this.stack);
            this.stack = grown;
          }
          this.stack[depth++] = c;
          if (c === LBRACE) {
            this.objectKey();
          }
          continue;
        }
      } else if (c === QUOTE) {
        this.scanString();
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        this.scanNumber();
      } else if (c === 0x74) {
        this.scanLiteral(TRUE);
      } else if (c === 0x66) {
        this.scanLiteral(FALSE);
      } else if (c === 0x6e) {
        this.scanLiteral(NULL);
      } else {
        this.unexpected(msg('expect/value'));
      }
      // After a value: close containers or move to the next element.
      for (;;) {
        if (depth === 0) return;
        this.skipWs();
        const open = this.stack[depth - 1];
        const d = this.pos < this.end ? buf[this.pos] : -1;
        if (d === COMMA) {
          this.pos++;
          if (open === LBRACE) {
            this.skipWs();
            this.objectKey();
          }
          break;
        }
        if ((open === LBRACE && d === RBRACE) || (open === LBRACKET && d === RBRACKET)) {
          this.pos++;
          depth--;
          continue;
        }
        this.unexpected(msg(open === LBRACE ? 'expect/comma-or-brace' : 'expect/comma-or-bracket'));
      }
    }
  }

  /** Inside an object in `skipValue`: a key and its colon. */
  private objectKey(): void {
    if (this.peek() !== QUOTE) this.unexpected(EXPECT_PROPERTY_NAME);
    this.scanString();
    this.skipWs();
    if (this.peek() !== COLON) this.unexpected(EXPECT_COLON);
    this.pos++;
  }
}

function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

const TRUE = bytes('true');
const FALSE = bytes('false');
const NULL = bytes('null');
const USER = bytes('user');
const SYSTEM = bytes('system');
const ASSISTANT = bytes('assistant');
const WEIGHT = bytes('weight');
const CONTENT = bytes('content');
const MESSAGES = bytes('messages');

/**
 * Whether the UTF-8 character at `p` (a byte of 0x80 or more) may be white space for `String.prototype.trim`:
 * U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 or U+FEFF. A false answer is exact;
 * a true one sends the caller to the exact (decoding) path.
 */
function mayBeSpace(buf: Uint8Array, p: number, end: number): boolean {
  const c = buf[p];
  const c1 = p + 1 < end ? buf[p + 1] : -1;
  const c2 = p + 2 < end ? buf[p + 2] : -1;
  switch (c) {
    case 0xc2:
      return c1 === 0xa0;
    case 0xe1:
      return c1 === 0x9a && c2 === 0x80;
    case 0xe2:
      return (c1 === 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 === 0xa8 || c2 === 0xa9 || c2 === 0xaf)) || (c1 === 0x81 && c2 === 0x9f);
    case 0xe3:
      return c1 === 0x80 && c2 === 0x80;
    case 0xef:
      return c1 === 0xbb && c2 === 0xbf;
    default:
      return false;
  }
}

function matches(buf: Uint8Array, start: number, word: Uint8Array): boolean {
  for (let k = 0; k < word.length; k++) if (buf[start + k] !== word[k]) return false;
  return true;
}
