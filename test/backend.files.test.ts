// The file routes over real HTTP: uploads streamed and checked with common/dataset (good, with warnings, with
// errors, too big, not multipart, broken multipart, a client that goes away), then list, get, download and
// delete, and a file in use by a job that may not be deleted.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FileObject, ListObject } from '../common/api';
import { FileStore, SharedSystemPrompt, UploadError } from '../backend/store/files';
import { call, dataset, type ErrorReply, startTestBackend, type TestBackend, upload, waitForEngine } from './backend.harness';

const LIMIT = 64 * 1024;
let b: TestBackend;

before(async () => {
  b = await startTestBackend({ maxUploadBytes: LIMIT });
});
after(async () => {
  await b.close();
});

/** Folders of stored files, and what is left in the incoming folder. */
function onDisk(): { stored: string[]; incoming: string[] } {
  const root = join(b.dir, 'files');
  return {
    stored: readdirSync(root).filter((n) => n.startsWith('file-')),
    incoming: existsSync(join(root, '.incoming')) ? readdirSync(join(root, '.incoming')) : [],
  };
}

describe('upload', () => {
  it('stores a valid dataset and reports its counts', async () => {
    const content = dataset(5);
    const reply = await upload(b, content, { filename: '../../etc/train.jsonl' });
    assert.equal(reply.status, 200, reply.text);
    const file = reply.body as FileObject;
    assert.match(file.id, /^file-[A-Za-z0-9]{24}$/);
    assert.deepEqual(
      { object: file.object, bytes: file.bytes, filename: file.filename, purpose: file.purpose, status: file.status, examples: file.examples, warnings: file.warnings },
      { object: 'file', bytes: Buffer.byteLength(content), filename: 'train.jsonl', purpose: 'fine-tune', status: 'processed', examples: 5, warnings: 0 },
    );
    assert.ok(Math.abs(file.created_at - Date.now() / 1000) < 60);
    assert.equal(readFileSync(join(b.dir, 'files', file.id, 'content.jsonl'), 'utf8'), content);
    assert.deepEqual(onDisk().incoming, []);
  });

  it('keeps a file with warnings only, and counts them', async () => {
    const line = dataset(1).trim();
    const reply = await upload(b, `${line}\n${line}\n\n${dataset(1, 'other')}`);
    assert.equal(reply.status, 200, reply.text);
    assert.equal((reply.body as FileObject).examples, 3);
    assert.equal((reply.body as FileObject).warnings, 2);
  });

  it('refuses a file with errors with its findings (1-based), and keeps nothing of it', async () => {
    const before = onDisk().stored.length;
    const good = dataset(2).trim().split('\n');
    const bad = `${good[0]}\n{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n${good[1]}\n`;
    const reply = await upload(b, bad);
    assert.equal(reply.status, 400, reply.text);
    const { error } = reply.body as ErrorReply;
    assert.equal(error.type, 'invalid_request_error');
    assert.equal(error.code, 'invalid_dataset');
    assert.equal(error.param, 'file');
    assert.ok(error.findings && error.findings.length >= 2);
    assert.equal(error.total_findings, error.findings.length);
    assert.deepEqual(
      error.findings.map((f) => [f.line, f.severity]).slice(0, 2),
      [
        [2, 'error'],
        [3, 'error'],
      ],
    );
    assert.ok(error.findings.every((f) => f.column >= 1));
    assert.match(error.message, /line 2, column \d+/);
    assert.equal(onDisk().stored.length, before);
    assert.deepEqual(onDisk().incoming, []);
  });

  it('reports the first 100 findings, errors first, and the total', async () => {
    const lines = [dataset(1).trim(), dataset(1).trim()];
    for (let i = 0; i < 150; i++) lines.push(`broken ${i}`);
    const reply = await upload(b, lines.join('\n'));
    assert.equal(reply.status, 400);
    const { error } = reply.body as ErrorReply;
    assert.equal(error.findings?.length, 100);
    assert.ok((error.total_findings ?? 0) >= 151, `total ${error.total_findings}`);
    assert.ok(error.findings?.every((f) => f.severity === 'error'));
    assert.equal(error.findings?.[0].line, 3);
  });

  it('refuses an empty file', async () => {
    const reply = await upload(b, '');
    assert.equal(reply.status, 400);
    assert.equal((reply.body as ErrorReply).error.findings?.[0].code, 'file-empty');
  });

  it('refuses a file over --max-upload-bytes with 413 and keeps nothing', async () => {
    const before = onDisk().stored.length;
    // Over the file limit, under the multipart allowance on top of it: refused while streaming, not up front.
    const big = dataset(1000).slice(0, LIMIT * 1.5);
    assert.ok(big.length > LIMIT);
    const reply = await upload(b, big);
    assert.equal(reply.status, 413);
    const { error } = reply.body as ErrorReply;
    assert.equal(error.type, 'payload_too_large');
    assert.match(error.message, new RegExp(String(LIMIT)));
    assert.equal(onDisk().stored.length, before);
    await b.log.waitFor(/dropped upload/, 5_000, true);
    assert.deepEqual(onDisk().incoming, []);
  });

  it('answers 413 to a chunked upload (no Content-Length) that goes over the limit while the client still sends', async () => {
    const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${b.url}/v1/files`, {
        method: 'POST',
        headers: { authorization: `Bearer ${b.key}`, 'content-type': 'multipart/form-data; boundary=big', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      // Once the answer is in, the server may drop the connection on the rest of the body.
      req.on('error', (error) => reject(error));
      req.write('--big\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n');
      const line = `${dataset(1).trim()}\n`;
      const piece = line.repeat(Math.ceil(16384 / line.length));
      let sent = 0;
      // Up to 80 times the limit, far more than the socket buffers hold: the server must answer mid-body.
      const pump = (): void => {
        while (sent < LIMIT * 80) {
          sent += piece.length;
          if (!req.write(piece.replace(/question 0/g, `question ${sent}`))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    assert.equal(reply.status, 413, reply.text);
    assert.equal((JSON.parse(reply.text) as ErrorReply).error.type, 'payload_too_large');
    await b.log.waitFor(/dropped upload/, 5_000, true);
    assert.deepEqual(onDisk().incoming, []);
  });

  it('refuses at once a body whose Content-Length is over the limit', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${b.url}/v1/files`, {
        method: 'POST',
        headers: { authorization: `Bearer ${b.key}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(LIMIT * 100) },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      // The server may close the connection while the body is still announced; only the answer counts.
      req.on('error', (error) => reject(error));
      req.write('--x\r\n');
    });
    assert.equal(status, 413);
  });

  const refusals: { name: string; send: () => Promise<{ status: number; body: unknown }>; status: number; code: string; param?: string | null }[] = [
    { name: 'JSON instead of multipart', send: () => call(b, 'POST', '/v1/files', { json: { purpose: 'fine-tune' } }), status: 415, code: 'unsupported_media_type' },
    { name: 'multipart without a boundary', send: () => call(b, 'POST', '/v1/files', { body: 'x', headers: { 'content-type': 'multipart/form-data' } }), status: 415, code: 'unsupported_media_type' },
    { name: 'no purpose', send: () => upload(b, dataset(1), { purpose: null }), status: 400, code: 'missing_required_parameter', param: 'purpose' },
    { name: 'another purpose', send: () => upload(b, dataset(1), { purpose: 'assistants' }), status: 400, code: 'invalid_value', param: 'purpose' },
    {
      name: 'no file part',
      send: () => {
        const form = new FormData();
        form.set('purpose', 'fine-tune');
        return call(b, 'POST', '/v1/files', { body: form });
      },
      status: 400,
      code: 'missing_required_parameter',
      param: 'file',
    },
    {
      name: 'an unknown field',
      send: () => {
        const form = new FormData();
        form.set('purpose', 'fine-tune');
        form.set('colour', 'blue');
        return call(b, 'POST', '/v1/files', { body: form });
      },
      status: 400,
      code: 'unknown_parameter',
      param: 'colour',
    },
    {
      name: 'a body without its closing delimiter',
      send: () =>
        call(b, 'POST', '/v1/files', {
          body: '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{"messages":[]}',
          headers: { 'content-type': 'multipart/form-data; boundary=b' },
        }),
      status: 400,
      code: 'invalid_multipart',
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name} (${r.status} ${r.code})`, async () => {
      const before = onDisk().stored.length;
      const reply = await r.send();
      assert.equal(reply.status, r.status, JSON.stringify(reply.body));
      const { error } = reply.body as ErrorReply;
      assert.equal(error.code, r.code);
      if (r.param !== undefined) assert.equal(error.param, r.param);
      assert.equal(typeof error.message, 'string');
      assert.equal(onDisk().stored.length, before);
    });
  }

  it('parses a multipart body cut into single bytes, purpose after the file, with a quoted boundary', async () => {
    const content = dataset(3, 'bytes');
    const body = Buffer.from(
      `preamble\r\n--a"b\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n${content}\r\n--a"b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--a"b--\r\nepilogue`.replace(/a"b/g, 'a=b c'),
    );
    const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${b.url}/v1/files`, {
        method: 'POST',
        headers: { authorization: `Bearer ${b.key}`, 'content-type': 'multipart/form-data; boundary="a=b c"', 'content-length': String(body.length) },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.setNoDelay(true);
      const write = (i: number): void => {
        if (i >= body.length) {
          req.end();
          return;
        }
        // Small pieces, so that delimiters and headers are split across reads.
        req.write(body.subarray(i, i + 7), () => write(i + 7));
      };
      write(0);
    });
    assert.equal(reply.status, 200, reply.text);
    const file = JSON.parse(reply.text) as FileObject;
    assert.equal(file.bytes, Buffer.byteLength(content));
    assert.equal(readFileSync(join(b.dir, 'files', file.id, 'content.jsonl'), 'utf8'), content);
  });

  it('leaves nothing behind when the client goes away mid-upload', async () => {
    const before = onDisk().stored.length;
    const dropped = b.log.waitFor(/dropped upload/);
    const req = request(`${b.url}/v1/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${b.key}`, 'content-type': 'multipart/form-data; boundary=zz', 'content-length': '100000' },
    });
    req.on('error', () => undefined);
    req.write(`--zz\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n${dataset(20)}`, () => {
      // Once the server has had the start of the file, the client vanishes.
      setImmediate(() => req.destroy());
    });
    await dropped;
    assert.equal(onDisk().stored.length, before);
    assert.deepEqual(onDisk().incoming, []);
  });
});

describe('list, get, download, delete', () => {
  const ids: string[] = [];
  const contents: string[] = [];
  let other: TestBackend;

  before(async () => {
    // A backend of its own, so the list holds only these files.
    other = await startTestBackend();
    for (let i = 0; i < 3; i++) {
      contents.push(dataset(2 + i, `list${i}`));
      const reply = await upload(other, contents[i], { filename: `f${i}.jsonl` });
      ids.push((reply.body as FileObject).id);
    }
  });
  after(async () => {
    await other.close();
  });

  it('lists newest first, pages with after and limit', async () => {
    const all = await call<ListObject<FileObject>>(other, 'GET', '/v1/files');
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.body.data.map((f) => f.id),
      [...ids].reverse(),
    );
    assert.equal(all.body.has_more, false);
    const first = await call<ListObject<FileObject>>(other, 'GET', '/v1/files?limit=2');
    assert.deepEqual(
      first.body.data.map((f) => f.id),
      [ids[2], ids[1]],
    );
    assert.equal(first.body.has_more, true);
    assert.equal(first.body.last_id, ids[1]);
    const next = await call<ListObject<FileObject>>(other, 'GET', `/v1/files?limit=2&after=${first.body.last_id}`);
    assert.deepEqual(
      next.body.data.map((f) => f.id),
      [ids[0]],
    );
    assert.equal(next.body.has_more, false);
  });

  for (const [query, param] of [
    ['limit=0', 'limit'],
    ['limit=10001', 'limit'],
    ['limit=abc', 'limit'],
    ['after=file-AAAAAAAAAAAAAAAAAAAAAAAA', 'after'],
  ] as const) {
    it(`refuses ?${query} with 400 naming ${param}`, async () => {
      const reply = await call<ErrorReply>(other, 'GET', `/v1/files?${query}`);
      assert.equal(reply.status, 400);
      assert.equal(reply.body.error.param, param);
    });
  }

  it('gets a file and downloads its content as application/jsonl', async () => {
    const got = await call<FileObject>(other, 'GET', `/v1/files/${ids[1]}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.filename, 'f1.jsonl');
    const content = await call(other, 'GET', `/v1/files/${ids[1]}/content`);
    assert.equal(content.status, 200);
    assert.equal(content.headers.get('content-type'), 'application/jsonl');
    assert.equal(content.text, contents[1]);
  });

  for (const id of ['file-AAAAAAAAAAAAAAAAAAAAAAAA', 'file-short', '..%2F..%2Fapi-key', 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA']) {
    it(`answers 404 for ${id}: get, content and delete`, async () => {
      for (const [method, suffix] of [
        ['GET', ''],
        ['GET', '/content'],
        ['DELETE', ''],
      ] as const) {
        const reply = await call<ErrorReply>(other, method, `/v1/files/${id}${suffix}`);
        assert.equal(reply.status, 404, `${method} ${suffix}`);
        assert.equal(reply.body.error.type, 'not_found_error');
      }
    });
  }

  it('deletes a file: gone from get, content and list', async () => {
    const reply = await call(other, 'DELETE', `/v1/files/${ids[0]}`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { id: ids[0], object: 'file', deleted: true });
    assert.equal((await call(other, 'GET', `/v1/files/${ids[0]}`)).status, 404);
    assert.equal((await call(other, 'GET', `/v1/files/${ids[0]}/content`)).status, 404);
    const list = await call<ListObject<FileObject>>(other, 'GET', '/v1/files');
    assert.ok(!list.body.data.some((f) => f.id === ids[0]));
    assert.ok(!existsSync(join(other.dir, 'files', ids[0])));
  });

  it('refuses with 409 to delete a file that an unfinished job uses, and deletes it once the job is cancelled', async () => {
    // The one slot is taken by a long job on another file; the job on this file waits in the queue.
    const busy = await call<{ id: string; status: string }>(other, 'POST', '/v1/fine_tuning/jobs', {
      json: { model: 'tiny-qwen2-1m', training_file: ids[1], hyperparameters: { n_epochs: 100 } },
    });
    assert.equal(busy.status, 200, busy.text);
    const job = await call<{ id: string; status: string }>(other, 'POST', '/v1/fine_tuning/jobs', {
      json: { model: 'tiny-qwen2-1m', training_file: ids[2] },
    });
    assert.equal(job.status, 200, job.text);
    assert.equal(job.body.status, 'queued');
    const refused = await call<ErrorReply>(other, 'DELETE', `/v1/files/${ids[2]}`);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.type, 'conflict_error');
    assert.equal((await call(other, 'GET', `/v1/files/${ids[2]}`)).status, 200);
    const cancelled = await call<{ status: string }>(other, 'POST', `/v1/fine_tuning/jobs/${job.body.id}/cancel`);
    assert.equal(cancelled.body.status, 'cancelled');
    assert.equal((await call(other, 'DELETE', `/v1/files/${ids[2]}`)).status, 200);
    await waitForEngine(other, busy.body.id);
    assert.equal((await call<{ status: string }>(other, 'POST', `/v1/fine_tuning/jobs/${busy.body.id}/cancel`)).body.status, 'cancelled');
  });

  it('indexes the stored files again after a restart', async () => {
    const dir = other.dir;
    const before = (await call<ListObject<FileObject>>(other, 'GET', '/v1/files')).body.data;
    await other.backend.close();
    other = await startTestBackend({}, dir);
    const again = await call<ListObject<FileObject>>(other, 'GET', '/v1/files');
    assert.deepEqual(again.body.data, before);
  });
});

describe('the store', () => {
  it('refuses a line longer than the limit (memory stays bounded by it), naming the line, and keeps nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-files-test-'));
    try {
      const store = await FileStore.open(dir, b.log);
      const upload = await store.begin(1 << 20, 1000);
      await upload.write(Buffer.from(dataset(2)));
      await upload.write(Buffer.from('{"messages": "'));
      await assert.rejects(
        async () => {
          for (let i = 0; i < 10; i++) await upload.write(Buffer.from('x'.repeat(200)));
        },
        (error: unknown) => UploadError.is(error) && error.reason === 'line_too_long' && /Line 3 is longer than 1000 bytes/.test(error.message),
      );
      await upload.abort();
      assert.deepEqual(readdirSync(join(dir, 'files', '.incoming')), []);
      assert.deepEqual(readdirSync(join(dir, 'files')), ['.incoming']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the shared system prompt', () => {
  const example = (system: string | undefined, i: number): Record<string, unknown> => ({
    messages: [...(system === undefined ? [] : [{ role: 'system', content: system }]), { role: 'user', content: `q ${i}?` }, { role: 'assistant', content: `a ${i}.` }],
  });
  const lines = (systems: (string | undefined)[]): string => `${systems.map((s, i) => JSON.stringify(example(s, i))).join('\n')}\n`;
  const PROMPT = 'You are a terse assistant. Answer in \u201cone\u201d line.\n\tNo "quotes".';
  const cases: { name: string; content: string; expected: string | null }[] = [
    { name: 'every example starts with the same system message', content: lines([PROMPT, PROMPT, PROMPT]), expected: PROMPT },
    {
      name: 'the same prompt written differently (escapes, spacing, key order, a BOM, a blank line)',
      content: `\ufeff${JSON.stringify(example(PROMPT, 0))}\n\n{ "messages" : [ { "content" : ${JSON.stringify(PROMPT).replace(/"$/, '').replace('terse', '\\u0074erse')}", "role": "system" }, {"role":"user","content":"x?"}, {"role":"assistant","content":"y."} ] }\r\n`,
      expected: PROMPT,
    },
    { name: 'one example with a system message', content: lines(['Be brief.']), expected: 'Be brief.' },
    ...(['"messages"', '"messag\\u0065s"'] as const).map((key) => ({
      // The same first bytes as the first example, but a second `messages` key later replaces the array (JSON.parse keeps the last).
      name: `a line that repeats the first one's start, then gives ${key} again without a system message`,
      content: `${lines([PROMPT]).trim()}\n${JSON.stringify(example(PROMPT, 1)).slice(0, -1)}, ${key}: [{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}\n`,
      expected: null,
    })),
    { name: 'an empty system prompt shared by all', content: lines(['', '']), expected: '' },
    { name: 'one example with another prompt', content: lines([PROMPT, PROMPT, 'Be brief.']), expected: null },
    { name: 'one example without a system message', content: lines([PROMPT, undefined, PROMPT]), expected: null },
    { name: 'no system messages', content: lines([undefined, undefined]), expected: null },
  ];
  let other: TestBackend;
  before(async () => {
    other = await startTestBackend();
  });
  after(async () => {
    await other.close();
  });

  for (const c of cases) {
    it(`${c.expected === null ? 'is null' : 'is kept'} when ${c.name}`, async () => {
      const reply = await upload(other, c.content);
      assert.equal(reply.status, 200, reply.text);
      const file = reply.body as FileObject;
      assert.equal(file.system_prompt, c.expected);
      assert.deepEqual((await call<FileObject>(other, 'GET', `/v1/files/${file.id}`)).body, file);
    });
  }

  it('is null for no examples at all', () => {
    assert.equal(new SharedSystemPrompt().value, null);
  });

  it('survives a restart, and a file stored before it was kept reads without the field', async () => {
    const dir = other.dir;
    const kept = (await upload(other, lines([PROMPT]))).body as FileObject;
    const differing = (await upload(other, lines([PROMPT, 'x']))).body as FileObject;
    await other.backend.close();
    // A record as the backend wrote it before this field existed.
    const oldId = 'file-OLDOLDOLDOLDOLDOLDOLDOLD';
    mkdirSync(join(dir, 'files', oldId));
    writeFileSync(join(dir, 'files', oldId, 'content.jsonl'), lines([PROMPT]));
    writeFileSync(
      join(dir, 'files', oldId, 'meta.json'),
      JSON.stringify({ id: oldId, owner: JSON.parse(readFileSync(join(dir, 'files', kept.id, 'meta.json'), 'utf8')).owner, filename: 'old.jsonl', bytes: 10, created_at: 1, created_ms: 1000, examples: 1, warnings: 0 }),
    );
    other = await startTestBackend({}, dir);
    assert.equal((await call<FileObject>(other, 'GET', `/v1/files/${kept.id}`)).body.system_prompt, PROMPT);
    assert.equal((await call<FileObject>(other, 'GET', `/v1/files/${differing.id}`)).body.system_prompt, null);
    const old = await call<FileObject>(other, 'GET', `/v1/files/${oldId}`);
    assert.equal(old.status, 200, old.text);
    assert.equal('system_prompt' in old.body, false);
    assert.equal(old.body.examples, 1);
  });
});
