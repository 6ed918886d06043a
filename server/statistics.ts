import type { DatasetCounts } from '../common/dataset/fileCheck';
import type { DatasetStatistics, Distribution } from '../common/lspProtocol';

/** A growable list of integers in a typed array: statistics over a million examples without a million boxes. */
export class IntList {
  private data = new Int32Array(1024);
  length = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }

  /** The values, as a view (valid until the next push). */
  values(): Int32Array {
    return this.data.subarray(0, this.length);
  }
}

/** Nearest-rank percentile of sorted values (p in [0, 1]). */
function percentile(sorted: Float64Array, p: number): number {
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Min, max, mean, median, p5 and p95 of some values; all zero when there are none. */
export function distribution(values: ArrayLike<number>): Distribution {
  const count = values.length;
  if (count === 0) return { count: 0, min: 0, max: 0, mean: 0, median: 0, p5: 0, p95: 0 };
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  const median = (sorted[(count - 1) >> 1] + sorted[count >> 1]) / 2;
  return {
    count,
    min: sorted[0],
    max: sorted[count - 1],
    mean: sum / count,
    median,
    p5: percentile(sorted, 0.05),
    p95: percentile(sorted, 0.95),
  };
}

/** The per-example values and the file-wide counts that statistics are made of. */
export interface StatisticsInput extends DatasetCounts {
  uri: string;
  live: boolean;
  maxSequenceLength: number;
  /** Messages of each valid example. */
  messages: ArrayLike<number>;
  /** Tokens and trained tokens of each counted valid example, pairwise. */
  tokens: ArrayLike<number>;
  trained: ArrayLike<number>;
}

/**
 * The statistics that "Show Dataset Statistics" shows. The epoch estimate truncates each example at the
 * maximum length, as training does; truncation cuts the end, which is an assistant reply, so the trained
 * tokens lost are taken to be the tokens cut (a lower bound of what is kept).
 */
export function buildStatistics(input: StatisticsInput): DatasetStatistics {
  const max = input.maxSequenceLength;
  let overLength = 0;
  let epochTokens = 0;
  let epochTrainedTokens = 0;
  for (let i = 0; i < input.tokens.length; i++) {
    const tokens = input.tokens[i];
    const trained = input.trained[i];
    if (tokens > max) {
      overLength++;
      epochTokens += max;
      epochTrainedTokens += Math.max(0, trained - (tokens - max));
    } else {
      epochTokens += tokens;
      epochTrainedTokens += trained;
    }
  }
  return {
    uri: input.uri,
    live: input.live,
    lines: input.lines,
    examples: input.examples,
    validExamples: input.validExamples,
    blank: input.blank,
    errors: input.errors,
    warnings: input.warnings,
    byCode: input.byCode,
    messagesPerExample: distribution(input.messages),
    tokensPerExample: distribution(input.tokens),
    trainedTokensPerExample: distribution(input.trained),
    tokenizedExamples: input.tokens.length,
    overLength,
    maxSequenceLength: max,
    epochTokens,
    epochTrainedTokens,
  };
}
