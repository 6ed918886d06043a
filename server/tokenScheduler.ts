import type { DatasetDocument } from './datasetDocument';
import type { TokenCounter } from './tokenCounter';

/**
 * How long one slice of counting may hold the thread. Between slices the event loop reads the next messages,
 * so an edit waits at most this long (plus one line) before its structural diagnostics are computed.
 */
const SLICE_MS = 6;

/**
 * Counts the tokens of open documents in the background, in slices of a few milliseconds (setImmediate
 * between them), edited lines first, then the lines the user sees, then the rest from the top; one line's
 * counts are cached by its hash so an unchanged line is never counted again. The document service wakes
 * it after every open and edit; it reports progress to the service, which re-publishes and updates the
 * status (throttled).
 */
export class TokenScheduler {
  private scheduled = false;
  private disposed = false;
  /** Rotates which document goes first, so that one big file does not starve the others. */
  private turn = 0;

  /**
   * @param holdOff how long to wait before the next slice (0: go): the service holds counting off while the
   *   user types and while diagnostics are still being written to the client, so that neither waits behind it.
   */
  constructor(
    private readonly counter: TokenCounter,
    private readonly documents: () => DatasetDocument[],
    private readonly progress: (doc: DatasetDocument, findingsChanged: boolean) => void,
    private readonly fail: (error: unknown) => void,
    private readonly holdOff: () => number = () => 0,
  ) {}

  /** There may be work: run a slice soon. */
  wake(): void {
    if (this.scheduled || this.disposed) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      try {
        this.slice();
      } catch (error) {
        this.fail(error);
      }
    };
    const wait = this.holdOff();
    if (wait > 0) setTimeout(run, wait);
    else setImmediate(run);
  }

  /** Stops for good (the connection is closing). */
  dispose(): void {
    this.disposed = true;
  }

  private slice(): void {
    const docs = this.documents().filter((doc) => doc.counting);
    if (docs.length === 0 || this.disposed) return;
    const state = this.counter.state;
    if (state !== 'ready') {
      if (state === 'failed') {
        for (const doc of docs) {
          doc.skipPendingTokens();
          this.progress(doc, false);
        }
      } else {
        this.counter.ensureLoaded(() => this.wake());
      }
      return;
    }
    const deadline = performance.now() + SLICE_MS;
    const first = this.turn++ % docs.length;
    for (let k = 0; k < docs.length && performance.now() < deadline; k++) {
      const doc = docs[(first + k) % docs.length];
      let changed = false;
      let worked = false;
      while (performance.now() < deadline) {
        const line = doc.nextPending();
        if (!line) break;
        if (doc.setTokens(line, this.counter.count(doc.model.jsonText(line)))) changed = true;
        worked = true;
      }
      if (worked) this.progress(doc, changed);
    }
    if (docs.some((doc) => doc.counting)) this.wake();
  }
}
