// Who may do what: every route but /healthz needs a key (HTTP and the WebSocket upgrade alike), keys are
// compared as hashes, and two keys never see each other's files or jobs (404, as if they did not exist). The
// generated key is stored with mode 0600 and reused.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import type { FileObject, FineTuningJob, ListObject, ServerSocketMessage } from '../common/api';
import { KeyRing, ownerOf } from '../backend/http/auth';
import { call, dataset, type ErrorReply, startTestBackend, type TestBackend, upload, waitForEngine } from './backend.harness';

const KEY_A = 'fs-test-key-alice-0123456789abcdef';
const KEY_B = 'fs-test-key-bob-0123456789abcdef00';
let b: TestBackend;
const alice = (): { url: string; key: string } => ({ url: b.url, key: KEY_A });
const bob = (): { url: string; key: string } => ({ url: b.url, key: KEY_B });

before(async () => {
  b = await startTestBackend({ apiKeys: [KEY_A, KEY_B] });
});
after(async () => {
  await b.close();
});

const FILE = 'file-AAAAAAAAAAAAAAAAAAAAAAAA';
const JOB = 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA';
const CKPT = 'ftckpt-AAAAAAAAAAAAAAAAAAAAAAAA';
const ROUTES: [string, string][] = [
  ['GET', '/v1/files'],
  ['POST', '/v1/files'],
  ['GET', `/v1/files/${FILE}`],
  ['DELETE', `/v1/files/${FILE}`],
  ['GET', `/v1/files/${FILE}/content`],
  ['GET', '/v1/fine_tuning/jobs'],
  ['POST', '/v1/fine_tuning/jobs'],
  ['GET', `/v1/fine_tuning/jobs/${JOB}`],
  ['POST', `/v1/fine_tuning/jobs/${JOB}/cancel`],
  ['GET', `/v1/fine_tuning/jobs/${JOB}/events`],
  ['GET', `/v1/fine_tuning/jobs/${JOB}/checkpoints`],
  ['GET', `/v1/fine_tuning/jobs/${JOB}/checkpoints/${CKPT}/files`],
  ['GET', `/v1/fine_tuning/jobs/${JOB}/checkpoints/${CKPT}/files/adapter_config.json`],
  ['POST', '/v1/chat/completions'],
  ['GET', '/v1/models'],
  ['GET', '/v1/models/tiny-qwen2-1m'],
  ['GET', '/v1/system'],
  ['DELETE', '/v1/system'],
];

describe('keys', () => {
  it('/healthz answers without a key', async () => {
    const reply = await call(b, 'GET', '/healthz', { key: null });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { status: 'ok' });
  });

  for (const [method, path] of ROUTES) {
    it(`${method} ${path}: 401 without a key, with a wrong key and with another scheme`, async () => {
      const variants: Record<string, string>[] = [{}, { authorization: `Bearer ${KEY_A}x` }, { authorization: `Basic ${Buffer.from(`u:${KEY_A}`).toString('base64')}` }, { authorization: 'Bearer' }];
      for (const headers of variants) {
        const reply = await call<ErrorReply>(b, method, path, { key: null, headers, json: method === 'POST' ? {} : undefined });
        assert.equal(reply.status, 401, `${JSON.stringify(headers)}: ${reply.text}`);
        assert.equal(reply.body.error.type, 'authentication_error');
        assert.equal(reply.headers.get('www-authenticate'), 'Bearer');
      }
    });
  }

  it('the owner is the first 16 hex digits of the key\'s SHA-256, and only known keys have one', () => {
    assert.equal(ownerOf(KEY_A), createHash('sha256').update(KEY_A).digest('hex').slice(0, 16));
    const ring = new KeyRing([KEY_A, KEY_B]);
    assert.equal(ring.check(KEY_B), ownerOf(KEY_B));
    assert.equal(ring.check(KEY_B.slice(0, -1)), undefined);
    assert.equal(ring.check(''), undefined);
  });
});

describe('two keys', () => {
  let file: FileObject;
  let job: FineTuningJob;

  before(async () => {
    file = (await upload(alice(), dataset(4))).body as FileObject;
    const created = await call<FineTuningJob>(alice(), 'POST', '/v1/fine_tuning/jobs', {
      json: { model: 'tiny-qwen2-1m', training_file: file.id, hyperparameters: { n_epochs: 100 } },
    });
    assert.equal(created.status, 200, created.text);
    job = created.body;
  });
  after(async () => {
    await waitForEngine(b, job.id);
    await call(alice(), 'POST', `/v1/fine_tuning/jobs/${job.id}/cancel`);
  });

  it('the other key gets 404 for the file and the job, exactly as for missing ones', async () => {
    const paths: [string, string, string][] = [
      ['GET', `/v1/files/${file.id}`, `/v1/files/${FILE}`],
      ['GET', `/v1/files/${file.id}/content`, `/v1/files/${FILE}/content`],
      ['DELETE', `/v1/files/${file.id}`, `/v1/files/${FILE}`],
      ['GET', `/v1/fine_tuning/jobs/${job.id}`, `/v1/fine_tuning/jobs/${JOB}`],
      ['POST', `/v1/fine_tuning/jobs/${job.id}/cancel`, `/v1/fine_tuning/jobs/${JOB}/cancel`],
      ['GET', `/v1/fine_tuning/jobs/${job.id}/events`, `/v1/fine_tuning/jobs/${JOB}/events`],
      ['GET', `/v1/fine_tuning/jobs/${job.id}/checkpoints`, `/v1/fine_tuning/jobs/${JOB}/checkpoints`],
    ];
    for (const [method, theirs, missing] of paths) {
      const reply = await call<ErrorReply>(bob(), method, theirs);
      const absent = await call<ErrorReply>(bob(), method, missing);
      assert.equal(reply.status, 404, `${method} ${theirs}`);
      // The same body but for the id itself: nothing tells "someone else's" from "none".
      const anonymous = (e: ErrorReply['error']): ErrorReply['error'] => ({ ...e, message: e.message.replace(/(file|ftjob)-[A-Za-z0-9]{24}/g, 'ID') });
      assert.deepEqual(anonymous(reply.body.error), anonymous(absent.body.error));
    }
    // And the owner still sees both.
    assert.equal((await call(alice(), 'GET', `/v1/files/${file.id}`)).status, 200);
    assert.equal((await call(alice(), 'GET', `/v1/fine_tuning/jobs/${job.id}`)).status, 200);
  });

  it('lists show only the key\'s own things', async () => {
    assert.deepEqual((await call<ListObject<FileObject>>(bob(), 'GET', '/v1/files')).body.data, []);
    assert.deepEqual((await call<ListObject<FineTuningJob>>(bob(), 'GET', '/v1/fine_tuning/jobs')).body.data, []);
    assert.deepEqual(
      (await call<ListObject<FileObject>>(alice(), 'GET', '/v1/files')).body.data.map((f) => f.id),
      [file.id],
    );
    assert.deepEqual(
      (await call<ListObject<FineTuningJob>>(alice(), 'GET', '/v1/fine_tuning/jobs')).body.data.map((j) => j.id),
      [job.id],
    );
  });

  it('the other key cannot train on the file: 400 naming training_file', async () => {
    const reply = await call<ErrorReply>(bob(), 'POST', '/v1/fine_tuning/jobs', { json: { model: 'tiny-qwen2-1m', training_file: file.id } });
    assert.equal(reply.status, 400);
    assert.equal(reply.body.error.param, 'training_file');
  });
});

describe('WebSocket /v1/events', () => {
  const wsUrl = (): string => `${b.url.replace('http', 'ws')}/v1/events`;

  /** The status of a refused upgrade. */
  async function refused(headers: Record<string, string>, protocols?: string[]): Promise<number> {
    const ws = new WebSocket(wsUrl(), protocols, { headers });
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number; resume(): void }];
    response.resume();
    ws.on('error', () => undefined);
    ws.terminate();
    return response.statusCode;
  }

  it('refuses an upgrade without a key, or with a wrong one, with HTTP 401', async () => {
    assert.equal(await refused({}), 401);
    assert.equal(await refused({ authorization: `Bearer ${KEY_A}-wrong` }), 401);
    assert.equal(await refused({}, [`bearer.${KEY_A}-wrong`]), 401);
  });

  it('refuses an upgrade of another path with 404', async () => {
    const ws = new WebSocket(`${b.url.replace('http', 'ws')}/v1/other`, { headers: { authorization: `Bearer ${KEY_A}` } });
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number; resume(): void }];
    response.resume();
    ws.on('error', () => undefined);
    ws.terminate();
    assert.equal(response.statusCode, 404);
  });

  for (const [name, options] of [
    ['the Authorization header', { headers: { authorization: `Bearer ${KEY_A}` } }],
    ['a bearer.<key> subprotocol', { protocols: [`bearer.${KEY_A}`] }],
  ] as const) {
    it(`accepts a key in ${name} and answers a subscription`, async () => {
      const ws = new WebSocket(wsUrl(), 'protocols' in options ? [...options.protocols] : undefined, 'headers' in options ? { headers: options.headers } : {});
      await once(ws, 'open');
      ws.send(JSON.stringify({ type: 'subscribe', jobs: {}, all: false }));
      const [data] = (await once(ws, 'message', { signal: AbortSignal.timeout(10_000) })) as [Buffer];
      const message = JSON.parse(data.toString()) as ServerSocketMessage;
      assert.equal(message.type, 'subscribed');
      ws.close();
      await once(ws, 'close');
    });
  }
});

describe('the stored key', () => {
  it('is generated with mode 0600, printed as fs-…, and reused by the next start', async () => {
    const first = await startTestBackend();
    try {
      assert.match(first.key, /^fs-[A-Za-z0-9_-]{43}$/);
      const path = `${first.dir}/api-key`;
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(readFileSync(path, 'utf8').trim(), first.key);
      assert.equal((await call(first, 'GET', '/v1/models')).status, 200);
      await first.backend.close();
      const second = await startTestBackend({}, first.dir);
      assert.equal(second.key, first.key);
      assert.equal((await call(second, 'GET', '/v1/models')).status, 200);
      await second.backend.close();
    } finally {
      await first.close();
    }
  });
});
