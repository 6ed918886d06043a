// The safetensors reader and writer of the embedded engine: F32 round trip with metadata, F16 and BF16 files
// written byte by byte here (special values included), sharded model folders, and clear errors on bad files.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  SafetensorsError,
  encodeSafetensors,
  halfToFloat,
  readModelWeights,
  readSafetensors,
  writeSafetensors,
  type Tensor,
} from '../backend/engines/embedded/model/safetensors';

const dir = mkdtempSync(join(tmpdir(), 'ft-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A safetensors file with raw tensor bytes of any dtype, built independently of the writer under test. */
function rawFile(entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[], pad = true): Buffer {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  let json = JSON.stringify(header);
  if (pad) while ((json.length + 8) % 8 !== 0) json += ' ';
  const h = Buffer.from(json);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, ...entries.map((e) => Buffer.from(e.bytes))]);
}

const u16 = (values: number[]): Uint8Array => {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
};

describe('safetensors', () => {
  it('F32: write then read gives the same tensors, header aligned to 8 bytes, no temporary file left', async () => {
    const tensors = new Map<string, Tensor>([
      ['a.weight', { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-30, -7]) }],
      ['b', { shape: [1], data: Float32Array.from([42]) }],
      ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const path = join(dir, 'f32.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt' });
    assert.deepEqual(readdirSync(dir), ['f32.safetensors']);
    const back = await readSafetensors(path);
    assert.deepEqual([...back.keys()], [...tensors.keys()]);
    for (const [name, t] of tensors) {
      assert.deepEqual(back.get(name)?.shape, t.shape);
      assert.deepEqual(Array.from(back.get(name)?.data ?? []), Array.from(t.data));
    }
    const bytes = encodeSafetensors(tensors, { format: 'pt' });
    const headerLength = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + headerLength) % 8, 0);
    assert.deepEqual((JSON.parse(bytes.subarray(8, 8 + headerLength).toString()) as { __metadata__: unknown }).__metadata__, { format: 'pt' });
  });

  it('F16: normals, subnormals, zero signs, infinities, NaN', async () => {
    const bits = [0x3c00, 0xc000, 0x3555, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7bff];
    const path = join(dir, 'f16.safetensors');
    writeFileSync(path, rawFile([{ name: 'x', dtype: 'F16', shape: [2, 5], bytes: u16(bits) }]));
    const x = (await readSafetensors(path)).get('x');
    assert.ok(x);
    assert.deepEqual(x.shape, [2, 5]);
    const want = [1, -2, 0.333251953125, 2 ** -24, 1023 * 2 ** -24, -0, Infinity, -Infinity, NaN, 65504];
    want.forEach((w, i) => assert.ok(Object.is(x.data[i], Math.fround(w)), `F16 ${bits[i].toString(16)}: got ${x.data[i]}, want ${w}`));
    assert.equal(halfToFloat(0x3c01), 1 + 2 ** -10);
  });

  it('BF16: the upper half of the float32 bits, data not aligned to 4 bytes', async () => {
    const values = [1, -3.5, 0.15625, 2 ** 60, -0]; // all exact in bfloat16
    const f32 = new Float32Array(values);
    const hi = Array.from(new Uint32Array(f32.buffer), (b) => b >>> 16);
    const path = join(dir, 'bf16.safetensors');
    // An unpadded header leaves the data at an offset that is not a multiple of 4.
    writeFileSync(path, rawFile([{ name: 'y', dtype: 'BF16', shape: [5], bytes: u16(hi) }], false));
    const y = (await readSafetensors(path)).get('y');
    assert.ok(y);
    values.forEach((v, i) => assert.ok(Object.is(y.data[i], Math.fround(v)), `BF16 ${v}: got ${y.data[i]}`));
  });

  it('a sharded model folder is read through its index', async () => {
    const folder = join(dir, 'sharded');
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder);
    await writeSafetensors(join(folder, 'model-00001-of-00002.safetensors'), new Map([['a', { shape: [2], data: Float32Array.from([1, 2]) }]]));
    writeFileSync(join(folder, 'model-00002-of-00002.safetensors'), rawFile([{ name: 'b', dtype: 'BF16', shape: [1], bytes: u16([0x4040]) }]));
    writeFileSync(join(folder, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 10 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
    const w = await readModelWeights(folder);
    assert.deepEqual(Array.from(w.get('a')?.data ?? []), [1, 2]);
    assert.deepEqual(Array.from(w.get('b')?.data ?? []), [3]);
    // the index naming a tensor its shard lacks
    writeFileSync(join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' } }));
    await assert.rejects(readModelWeights(folder), (e) => SafetensorsError.is(e) && e.code === 'missing_tensor' && e.message.includes('"c"'));
    // a shard outside the folder
    writeFileSync(join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../f32.safetensors' } }));
    await assert.rejects(readModelWeights(folder), (e) => SafetensorsError.is(e) && e.code === 'invalid_format');
  });

  it('bad files are refused with the reason and the place', async () => {
    const cases: [string, Buffer, SafetensorsError['code'], RegExp][] = [
      ['short', Buffer.from([1, 2, 3]), 'invalid_format', /shorter than the 8-byte/],
      ['overlong header', Buffer.from([255, 0, 0, 0, 0, 0, 0, 0, 123]), 'invalid_format', /runs past the end/],
      ['not json', Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{x')]), 'invalid_format', /not valid JSON/],
      ['dtype', rawFile([{ name: 'i', dtype: 'I64', shape: [1], bytes: new Uint8Array(8) }]), 'unsupported_dtype', /"i" has dtype I64/],
      ['size', rawFile([{ name: 's', dtype: 'F32', shape: [3], bytes: new Uint8Array(8) }]), 'invalid_format', /"s": 8 bytes for shape \[3\]/],
    ];
    for (const [label, bytes, code, message] of cases) {
      const path = join(dir, `bad-${label.replace(/ /g, '-')}.safetensors`);
      writeFileSync(path, bytes);
      await assert.rejects(readSafetensors(path), (e) => SafetensorsError.is(e) && e.code === code && message.test(e.message) && e.message.includes(path), label);
    }
    await assert.rejects(readSafetensors(join(dir, 'missing.safetensors')), (e) => SafetensorsError.is(e) && e.code === 'not_found');
    await assert.rejects(readModelWeights(join(dir, 'nowhere')), (e) => SafetensorsError.is(e) && e.code === 'not_found');
  });
});
