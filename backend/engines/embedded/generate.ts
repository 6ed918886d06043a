// Generation with a KV cache: the prompt is run once, then one token at a time is sampled and fed back, with the
// text streamed as it comes. Used for chat (serve.ts) and for the checkpoint samples of a training run.
import type { BpeTokenizer } from '../../../common/tokenizer/bpe';
import { CancelledError, EngineError, yieldToEventLoop } from './errors';
import type { Qwen2Model } from './model/qwen2';
import { Rng } from './model/rng';
import { sampleToken, type SamplingOptions } from './model/sampling';
import { TokenBytes } from './tokenizer';

/**
 * Turns generated token ids into text pieces that are safe to show: a character whose UTF-8 bytes span several
 * tokens is held back until complete, and text that might be the start of a stop string is held back until it
 * is known not to be. Once a stop string appears, the text before it is the end of the answer.
 */
export class TextStream {
  private readonly decoder = new TextDecoder('utf-8');
  private text = '';
  private emitted = 0;
  /** Set when a stop string was found: nothing more is emitted. */
  stopped = false;

  constructor(
    private readonly bytes: TokenBytes,
    private readonly stops: readonly string[],
  ) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Adds one generated token; returns the text that can be shown now (often empty). */
  push(id: number): string {
    if (this.stopped) return '';
    this.text += this.decoder.decode(this.bytes.of(id), { stream: true });
    return this.release(false);
  }

  /** The end of generation: returns whatever was held back (an incomplete character becomes U+FFFD). */
  finish(): string {
    if (this.stopped) return '';
    this.text += this.decoder.decode();
    return this.release(true);
  }

  /** Everything shown so far and still to show, up to a stop string. */
  get answer(): string {
    return this.text.slice(0, this.emitted);
  }

  private release(final: boolean): string {
    const from = this.emitted;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      return this.emit(cut);
    }
    let hold = 0;
    if (!final) {
      for (const stop of this.stops) {
        for (let k = Math.min(stop.length - 1, this.text.length - this.emitted); k > hold; k--) {
          if (this.text.endsWith(stop.slice(0, k))) {
            hold = k;
            break;
          }
        }
      }
    }
    return this.emit(this.text.length - hold);
  }

  private emit(end: number): string {
    const piece = this.text.slice(this.emitted, end);
    this.emitted = end;
    return piece;
  }
}

/**
 * Rules out the ids past the tokenizer's last one: a model's embedding is often padded (the tiny models have 272
 * rows for 259 ids), and an id without a token could neither be shown nor fed back.
 */
export function maskUnusedIds(logits: Float32Array, vocabSize: number): void {
  if (vocabSize < logits.length) logits.fill(-Infinity, vocabSize);
}

/** What to generate. */
export interface GenerateOptions {
  model: Qwen2Model;
  tokenizer: BpeTokenizer;
  /** Token bytes of that tokenizer (kept with the model, so the cache is shared across requests). */
  bytes?: TokenBytes;
  prompt: readonly number[];
  /** Ids that end the answer and are not part of it (`<|im_end|>`, `<|endoftext|>`). */
  stopIds: readonly number[];
  /** Strings that end the answer and are not part of it. */
  stop: readonly string[];
  maxTokens: number;
  sampling: SamplingOptions;
  seed: number;
  /** Called with each non-empty piece of text as it becomes showable. */
  onText?: (text: string) => void;
  /** Checked between tokens: true stops generation with a CancelledError. */
  cancelled?: () => boolean;
}

/** How a generation ended. */
export interface Generation {
  text: string;
  finishReason: 'stop' | 'length';
  promptTokens: number;
  completionTokens: number;
}

/**
 * Generates an answer, yielding to the event loop between tokens (so that a cancel is seen within a token).
 * Stops at an end id or a stop string (`stop`), or after `maxTokens` or at the model's context length (`length`).
 * @throws CancelledError when `cancelled()` became true
 * @throws EngineError `engine_error` when the prompt alone fills the model's context
 */
export async function generate(o: GenerateOptions): Promise<Generation> {
  const context = o.model.config.max_position_embeddings;
  const limit = Math.min(o.maxTokens, context - o.prompt.length);
  if (limit <= 0) {
    throw new EngineError('engine_error', `the prompt has ${o.prompt.length} tokens; the model's context is ${context} tokens`);
  }
  const stream = new TextStream(o.bytes ?? new TokenBytes(o.tokenizer), o.stop);
  const show = (piece: string): void => {
    if (piece !== '' && o.onText) o.onText(piece);
  };
  const rng = new Rng(o.seed);
  const previous = [...o.prompt];
  const cache = o.model.newCache(o.prompt.length + limit);
  let logits = o.model.extend(cache, Int32Array.from(o.prompt));
  let generated = 0;
  let finishReason: 'stop' | 'length' = 'length';
  for (;;) {
    await yieldToEventLoop();
    if (o.cancelled?.()) throw new CancelledError();
    maskUnusedIds(logits, o.tokenizer.vocabSize);
    const id = sampleToken(logits, o.sampling, previous, rng);
    if (o.stopIds.includes(id)) {
      finishReason = 'stop';
      break;
    }
    generated++;
    previous.push(id);
    show(stream.push(id));
    if (stream.stopped) {
      finishReason = 'stop';
      break;
    }
    if (generated >= limit) break;
    logits = o.model.extend(cache, Int32Array.of(id));
  }
  show(stream.finish());
  return { text: stream.answer, finishReason, promptTokens: o.prompt.length, completionTokens: generated };
}
