// The safetensors format: an 8-byte little-endian header length, a JSON header (`name → {dtype, shape,
// data_offsets}` plus an optional `__metadata__` of strings), then the raw little-endian tensor bytes. F32, F16
// and BF16 are read and widened to Float32Array; files are written in F32. Sharded models keep a
// `model.safetensors.index.json` whose `weight_map` says which shard holds each tensor.
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

/** A dense row-major tensor of float32 values. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Why reading or writing weights failed; `path` names the file at fault. */
export class SafetensorsError extends Error {
  constructor(
    readonly code: 'not_found' | 'invalid_format' | 'unsupported_dtype' | 'missing_tensor' | 'io',
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
  static is(e: unknown): e is SafetensorsError {
    return e instanceof SafetensorsError;
  }
}

const DTYPE_BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2 };

/** Reads every tensor of one .safetensors file, widened to float32. */
export async function readSafetensors(path: string): Promise<Map<string, Tensor>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not_found' : 'io';
    throw new SafetensorsError(code, path, `cannot read: ${(e as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

/** Parses the bytes of a .safetensors file; `path` is only used in error messages. */
export function parseSafetensors(bytes: Uint8Array, path: string): Map<string, Tensor> {
  const bad = (message: string): SafetensorsError => new SafetensorsError('invalid_format', path, message);
  if (bytes.length < 8) throw bad(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) throw bad(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw bad(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const out = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    if (typeof entry !== 'object' || entry === null) throw bad(`tensor "${name}": entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string') throw bad(`tensor "${name}": dtype missing`);
    const width = DTYPE_BYTES[dtype];
    if (width === undefined) {
      throw new SafetensorsError('unsupported_dtype', path, `tensor "${name}" has dtype ${dtype}; only F32, F16 and BF16 are supported`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
      throw bad(`tensor "${name}": shape must be an array of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
      throw bad(`tensor "${name}": data_offsets must be two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength) throw bad(`tensor "${name}": data_offsets [${begin}, ${end}] outside the ${dataLength} data bytes`);
    if (end - begin !== count * width) {
      throw bad(`tensor "${name}": ${end - begin} bytes for shape [${(shape as number[]).join(', ')}] of ${dtype} (expected ${count * width})`);
    }
    out.set(name, { shape: [...(shape as number[])], data: decode(bytes, dataStart + begin, count, dtype) });
  }
  return out;
}

function decode(bytes: Uint8Array, start: number, count: number, dtype: string): Float32Array {
  const data = new Float32Array(count);
  if (dtype === 'F32') {
    // Copying the bytes gives an aligned buffer whatever the tensor's offset in the file.
    new Uint8Array(data.buffer).set(bytes.subarray(start, start + count * 4));
    return data;
  }
  const half = new Uint16Array(count);
  new Uint8Array(half.buffer).set(bytes.subarray(start, start + count * 2));
  if (dtype === 'BF16') {
    const bits = new Uint32Array(data.buffer);
    for (let i = 0; i < count; i++) bits[i] = half[i] << 16;
    return data;
  }
  for (let i = 0; i < count; i++) data[i] = halfToFloat(half[i]);
  return data;
}

/** IEEE 754 binary16 bits → number (subnormals, infinities and NaN included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Serialises tensors as F32 safetensors bytes (header padded with spaces to 8 bytes, as the reference does). */
export function encodeSafetensors(tensors: Map<string, Tensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new SafetensorsError('invalid_format', name, `shape [${t.shape.join(', ')}] holds ${count} values but data has ${t.data.length}`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes an F32 safetensors file: to a temporary name first, then renamed, so a crash never leaves half a file. */
export async function writeSafetensors(path: string, tensors: Map<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new SafetensorsError('io', path, `cannot write: ${(e as Error).message}`);
  }
}

/** A model folder's weights: `model.safetensors`, or the shards named by `model.safetensors.index.json`. */
export async function readModelWeights(folder: string): Promise<Map<string, Tensor>> {
  const indexPath = join(folder, 'model.safetensors.index.json');
  if (!(await exists(indexPath))) {
    const single = join(folder, 'model.safetensors');
    if (!(await exists(single))) {
      throw new SafetensorsError('not_found', folder, 'no model.safetensors nor model.safetensors.index.json in this folder');
    }
    return readSafetensors(single);
  }
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new SafetensorsError('invalid_format', indexPath, `not valid JSON: ${(e as Error).message}`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new SafetensorsError('invalid_format', indexPath, 'no "weight_map" object');
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string') throw new SafetensorsError('invalid_format', indexPath, `weight_map["${name}"] is not a file name`);
    // A shard must sit in the model folder: the index is data from outside and may not point elsewhere.
    const shardPath = resolve(folder, shard);
    if (dirname(shardPath) !== resolve(folder)) {
      throw new SafetensorsError('invalid_format', indexPath, `weight_map["${name}"] = "${shard}" is not a file of the model folder`);
    }
    const names = byShard.get(shardPath) ?? [];
    names.push(name);
    byShard.set(shardPath, names);
  }
  const out = new Map<string, Tensor>();
  for (const [shardPath, names] of byShard) {
    const tensors = await readSafetensors(shardPath);
    for (const name of names) {
      const t = tensors.get(name);
      if (!t) throw new SafetensorsError('missing_tensor', shardPath, `the index puts "${name}" in this shard but it is not there`);
      out.set(name, t);
    }
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
