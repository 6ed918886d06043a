import type { BpeTokenizer } from '../common/tokenizer/bpe';
import { chatMessagesOf, countConversation } from '../common/tokenizer/chat';
import { loadQwenTokenizer } from './tokenizerFile';

/** Token counts of one conversation rendered with the Qwen2.5 chat template. */
export interface TokenCounts {
  /** Every token of the rendered conversation. */
  total: number;
  /** Tokens that training learns from (assistant replies with their end marker). */
  trained: number;
}

/** Where the tokenizer stands: counting waits for 'ready' and stops for good on 'failed'. */
export type TokenizerState = 'idle' | 'loading' | 'ready' | 'failed';

/**
 * Lines longer than this (UTF-16 units) are not tokenized: counting runs on the server's only thread, and a
 * line of megabytes would hold it for seconds. A conversation this long is far over any maximum length that
 * training uses, and its hover says that it was not counted.
 */
export const MAX_COUNTED_LENGTH = 1 << 20;

/** Results of the counts kept across documents, keyed by line hash, so an undo or a reopen counts nothing again. */
const CACHE_SIZE = 1 << 17;

/**
 * Counts the tokens of dataset lines with the Qwen2.5 tokenizer. The live documents' scheduler and the
 * disk checker call it; it loads the tokenizer once, in the background, on the first `ensureLoaded`, and
 * when that fails (no media/ file, a broken file) token counting is simply off, with the reason logged.
 */
export class TokenCounter {
  private tokenizer: BpeTokenizer | undefined;
  private stateValue: TokenizerState = 'idle';
  private cacheNew = new Map<number, TokenCounts>();
  private cacheOld = new Map<number, TokenCounts>();
  private readonly waiting: (() => void)[] = [];
  /** Why loading failed, for hovers and logs. */
  failure: string | undefined;

  constructor(
    private readonly log: (message: string) => void,
    private readonly load: () => Promise<BpeTokenizer> = () => loadQwenTokenizer(),
  ) {}

  get state(): TokenizerState {
    return this.stateValue;
  }

  /**
   * Starts loading the tokenizer unless it is loaded or loading; `done` runs once the attempt is over (at
   * once when it already is): callers look at `state` then.
   */
  ensureLoaded(done?: () => void): void {
    if (this.stateValue === 'ready' || this.stateValue === 'failed') {
      done?.();
      return;
    }
    if (done) this.waiting.push(done);
    if (this.stateValue === 'loading') return;
    this.stateValue = 'loading';
    const started = performance.now();
    const finish = (): void => {
      for (const callback of this.waiting.splice(0)) callback();
    };
    this.load().then(
      (tokenizer) => {
        this.tokenizer = tokenizer;
        this.stateValue = 'ready';
        this.log(`Tokenizer loaded in ${Math.round(performance.now() - started)} ms.`);
        finish();
      },
      (error: unknown) => {
        this.stateValue = 'failed';
        this.failure = error instanceof Error ? error.message : String(error);
        this.log(`Token counting is off: the Qwen2.5 tokenizer could not be loaded (${this.failure}).`);
        finish();
      },
    );
  }

  /** Counts known for a line's hash, from any document. */
  cached(hash: number): TokenCounts | undefined {
    return this.cacheNew.get(hash) ?? this.cacheOld.get(hash);
  }

  /** Remembers counts for a line's hash (two generations, so the cache stays bounded). */
  remember(hash: number, counts: TokenCounts): void {
    if (this.cacheNew.size >= CACHE_SIZE) {
      this.cacheOld = this.cacheNew;
      this.cacheNew = new Map();
    }
    this.cacheNew.set(hash, counts);
  }

  /**
   * Counts one line that the checks found to be a valid example. Undefined when the tokenizer is not ready,
   * the line is over {@link MAX_COUNTED_LENGTH}, or it does not parse as the checks said it would.
   */
  count(text: string): TokenCounts | undefined {
    const tokenizer = this.tokenizer;
    if (!tokenizer || text.length > MAX_COUNTED_LENGTH) return undefined;
    const turns = chatMessagesOf(text);
    if (turns === undefined) return undefined;
    return countConversation(tokenizer, turns);
  }
}
