import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { webviewStrings } from '../src/newRunStrings';
import { IpcEndpoint, IpcError, STRING_KEYS, format, ipcNotification, ipcRequest, isWireMessage, type WireMessage } from '../webview/protocol';

const Add = ipcRequest<{ a: number; b: number }, number>('test/add');
const Fail = ipcRequest<null, null>('test/fail');
const Slow = ipcRequest<null, string>('test/slow');
const Missing = ipcRequest<null, null>('test/missing');
const Note = ipcNotification<{ text: string }>('test/note');

/** Two endpoints joined like a panel and its webview: messages cross asynchronously, as JSON (structured clone). */
function pair(): { host: IpcEndpoint; webview: IpcEndpoint; posted: WireMessage[] } {
  const posted: WireMessage[] = [];
  const host: IpcEndpoint = new IpcEndpoint((m) => {
    posted.push(m);
    setImmediate(() => webview.receive(JSON.parse(JSON.stringify(m))));
  });
  const webview: IpcEndpoint = new IpcEndpoint((m) => {
    posted.push(m);
    setImmediate(() => host.receive(JSON.parse(JSON.stringify(m))));
  });
  return { host, webview, posted };
}

async function rejection(promise: Promise<unknown>): Promise<IpcError> {
  return promise.then(
    () => assert.fail('the request resolved'),
    (error: unknown) => {
      assert.ok(IpcError.is(error), String(error));
      return error;
    },
  );
}

describe('the webview protocol', () => {
  it('matches concurrent responses to their requests by id', async () => {
    const { host, webview } = pair();
    let calls = 0;
    host.onRequest(Add, async ({ a, b }) => {
      calls++;
      // The first request answers last.
      if (a === 1) await new Promise<void>((resolve) => setTimeout(resolve, 20));
      return a + b;
    });
    const results = await Promise.all([webview.request(Add, { a: 1, b: 1 }), webview.request(Add, { a: 2, b: 3 }), webview.request(Add, { a: 10, b: 5 })]);
    assert.deepEqual(results, [2, 5, 15]);
    assert.equal(calls, 3);
  });

  it('rejects with the other side\'s error and its code', async () => {
    const { host, webview } = pair();
    host.onRequest(Fail, () => {
      throw Object.assign(new Error('lora_r must be at most 256'), { code: 'lora_r' });
    });
    const error = await rejection(webview.request(Fail, null));
    assert.equal(error.reason, 'remote');
    assert.equal(error.code, 'lora_r');
    assert.equal(error.message, 'lora_r must be at most 256');
    const missing = await rejection(webview.request(Missing, null));
    assert.equal(missing.code, 'unknown_method');
  });

  it('times out, and ignores the answer that comes too late', async () => {
    const { host, webview } = pair();
    let answer: ((value: string) => void) | undefined;
    host.onRequest(Slow, () => new Promise<string>((resolve) => (answer = resolve)));
    const error = await rejection(webview.request(Slow, null, 30));
    assert.equal(error.reason, 'timeout');
    assert.ok(answer, 'the host got the request');
    answer('late');
    // A later request still works: the late answer did not settle it.
    host.onRequest(Add, ({ a, b }) => a + b);
    assert.equal(await webview.request(Add, { a: 1, b: 2 }), 3);
  });

  it('rejects what is pending when closed, and sends nothing after', async () => {
    const { host, webview, posted } = pair();
    host.onRequest(Slow, () => new Promise<string>(() => undefined));
    const pending = webview.request(Slow, null);
    webview.close();
    assert.equal((await rejection(pending)).reason, 'closed');
    assert.equal((await rejection(webview.request(Slow, null))).reason, 'closed');
    const count = posted.length;
    webview.notify(Note, { text: 'x' });
    assert.equal(posted.length, count);
  });

  it('delivers notifications', async () => {
    const { host, webview } = pair();
    const got = new Promise<string>((resolve) => webview.onNotification(Note, ({ text }) => resolve(text)));
    host.notify(Note, { text: 'hello' });
    assert.equal(await got, 'hello');
  });

  it('ignores what is not a protocol message', () => {
    const { host } = pair();
    for (const junk of [null, 'x', 42, [], { type: 'request' }, { type: 'response', id: 1 }, { type: 'response', id: 1, ok: false }, { type: 'other', id: 1 }]) {
      assert.equal(isWireMessage(junk), false, JSON.stringify(junk));
      assert.equal(host.receive(junk), false);
    }
    assert.equal(isWireMessage({ type: 'response', id: 1, ok: false, error: { message: 'm', code: '' } }), true);
  });

  it('has a string for every key, with the placeholders filled like vscode.l10n.t', () => {
    const strings = webviewStrings();
    assert.deepEqual(Object.keys(strings).sort(), [...STRING_KEYS].sort());
    for (const [key, text] of Object.entries(strings)) assert.ok(text.length > 0, key);
    assert.equal(format(strings['dataset.stats'], 10, '1,000', 500), '10 examples · 1,000 tokens · 500 trained tokens');
    assert.equal(format('{0} and {1}', 'a'), 'a and {1}');
  });
});
