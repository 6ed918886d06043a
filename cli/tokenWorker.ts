// The body of a token-counting worker thread (see WorkerPoolTokens): loads its own tokenizer, then counts the
// batches it is sent and posts the results back. Started from the command-line bundle itself, so that the
// published package needs no second entry file.
import { parentPort } from 'node:worker_threads';
import { TokenCounter } from '../server/tokenCounter';
import { loadQwenTokenizer } from '../server/tokenizerFile';
import { countBatch, type FromWorker, type ToWorker, type TokenWorkerData } from './tokens';

/** Runs a token worker until its parent terminates it. */
export function runTokenWorker(data: TokenWorkerData): void {
  const port = parentPort;
  if (!port) throw new Error('runTokenWorker: not started as a worker thread (no parentPort).');
  const post = (message: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);
  let counter: TokenCounter | undefined;
  const queue: ToWorker[] = [];
  const work = (message: ToWorker): void => {
    const { totals, lengths } = countBatch(counter!, message);
    post({ type: 'result', id: message.id, totals, lengths }, [totals.buffer as ArrayBuffer, lengths.buffer as ArrayBuffer]);
  };
  // Batches that arrive while the tokenizer loads wait in order.
  port.on('message', (message: ToWorker) => {
    if (counter) work(message);
    else queue.push(message);
  });
  loadQwenTokenizer(data.tokenizerPath).then(
    (tokenizer) => {
      const loaded = new TokenCounter(() => {}, () => Promise.resolve(tokenizer));
      loaded.ensureLoaded(() => {
        counter = loaded;
        for (const message of queue.splice(0)) work(message);
      });
    },
    (error: unknown) => post({ type: 'failed', reason: error instanceof Error ? error.message : String(error) }),
  );
}
