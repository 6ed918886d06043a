// Keeps the findings of one file in order while token counts are still out: a line's findings can be printed
// only once its `too-long` is known, because that finding is sorted among them. Findings wait here only as
// long as the batches in flight (bounded by the token engine's capacity), so memory stays bounded.
import { compareFindings, type Finding } from '../common/dataset/codes';
import { tooLongFinding } from '../common/dataset/fileCheck';
import type { TokenResult } from './tokens';

interface TrackedBatch {
  firstLine: number;
  lines: Int32Array;
  result: TokenResult | undefined;
  done: boolean;
}

/** Orders a file's findings with the `too-long` findings that token counting adds, and hands them on in order. */
export class FindingQueue {
  private findings: Finding[] = [];
  private head = 0;
  private batches: TrackedBatch[] = [];
  private ready: Finding[] = [];
  private readyHead = 0;
  /** `too-long` findings so far (over every batch that came back). */
  tooLong = 0;
  /** Examples whose tokens were counted. */
  counted = 0;

  constructor(
    private readonly maxTokens: number,
    private readonly emit: (finding: Finding) => Promise<void>,
  ) {}

  /** A finding of the checker, in file order. */
  add(f: Finding): void {
    this.findings.push(f);
  }

  /** A batch of lines whose counts are coming; call `settle` with its result (undefined: not counted). */
  track(lines: Int32Array): (result: TokenResult | undefined) => void {
    const batch: TrackedBatch = { firstLine: lines[0], lines, result: undefined, done: false };
    this.batches.push(batch);
    return (result) => {
      batch.result = result;
      batch.done = true;
    };
  }

  /**
   * Emits every finding that can no longer change place: those of lines before the first line still waiting
   * for its count. `openLine` is the first line of a batch still being filled (-1: none); at the end of the
   * file, pass -1 once every batch is settled to emit the rest.
   */
  async flush(openLine: number): Promise<void> {
    // Settled batches at the front become too-long findings, in line order.
    let b = 0;
    for (; b < this.batches.length && this.batches[b].done; b++) this.takeResult(this.batches[b]);
    if (b > 0) this.batches.splice(0, b);
    const frontier = this.batches.length > 0 ? this.batches[0].firstLine : openLine >= 0 ? openLine : Infinity;
    const findings = this.findings;
    const ready = this.ready;
    for (;;) {
      const f = this.head < findings.length ? findings[this.head] : undefined;
      const t = this.readyHead < ready.length ? ready[this.readyHead] : undefined;
      if (t && t.line < frontier && (!f || t.line <= f.line)) {
        // A line with a too-long finding: sort it among the line's other findings.
        const group = [t];
        this.readyHead++;
        while (this.head < findings.length && findings[this.head].line === t.line) group.push(findings[this.head++]);
        group.sort(compareFindings);
        for (const g of group) await this.emit(g);
      } else if (f && f.line < frontier) {
        this.head++;
        await this.emit(f);
      } else {
        break;
      }
    }
    if (this.head > 4096 && this.head * 2 > findings.length) {
      this.findings = findings.slice(this.head);
      this.head = 0;
    }
    if (this.readyHead > 1024 && this.readyHead * 2 > ready.length) {
      this.ready = ready.slice(this.readyHead);
      this.readyHead = 0;
    }
  }

  private takeResult(batch: TrackedBatch): void {
    const result = batch.result;
    if (!result) return;
    for (let i = 0; i < batch.lines.length; i++) {
      const tokens = result.totals[i];
      if (tokens < 0) continue;
      this.counted++;
      if (tokens > this.maxTokens) {
        this.tooLong++;
        // The editor's own wording and range (the whole line), so that both print the same finding.
        this.ready.push({ ...tooLongFinding(tokens, this.maxTokens, result.lengths[i]), line: batch.lines[i] });
      }
    }
  }
}
