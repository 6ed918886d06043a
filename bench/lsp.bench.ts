// Benchmark of the dataset language server (issue 2, "Speed"): the server's own time from receiving a change to
// having published its diagnostics, on a 1,000,000-line document with ~25,000 findings; and its resident memory
// after opening a ~100 MB mixed Chinese/English document, against the file's size.
//
//   npm run build && node --import tsx bench/lsp.bench.ts
//
// The server is the built bundle (dist/server.js, rebuilt here when stale), started over stdio as an editor
// starts it, with FINETUNE_LSP_TIMINGS=1 so that it reports its time per change (`$/finetune/timing`).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestClient } from '../test/server.harness';
import { ensureDataset, seeded } from './generate';

/** Figures of one run. */
export interface LspBenchResult {
  edits: {
    lines: number;
    findings: number;
    openMs: number;
    count: number;
    /** The server's own time per change, from its didChange handler to after publishing. */
    serverMedianMs: number;
    serverP95Ms: number;
    serverMaxMs: number;
    /** Seen from the client: sending the change to receiving the diagnostics. */
    roundTripMedianMs: number;
    roundTripP95Ms: number;
  };
  memory: {
    fileBytes: number;
    lines: number;
    openMs: number;
    /** VmRSS of the server when the diagnostics of the opened document arrived. */
    rssAtOpenBytes: number;
    /**
     * VmRSS once the server has dropped the copies of the open message (it runs a full collection after a big
     * open) and the tokenizer is loaded and counting: what the server holds for this file from then on.
     */
    rssBytes: number;
    /** VmHWM: the peak resident size (the open message is held several times over while it is decoded). */
    peakBytes: number;
    rssRatio: number;
    peakRatio: number;
  };
}

/** Options, for a quicker run. */
export interface LspBenchOptions {
  lines?: number;
  edits?: number;
  memoryBytes?: number;
  log?: (line: string) => void;
}

const ZH = '模型 训练 数据 样本 损失 梯度 学习率 检查点 推理 部署 对话 助手 问题 回答 北京 上海 天气 旅行'.split(' ');
const EN = 'the model data sample loss token batch answer question please thanks weather travel city code value'.split(' ');

/**
 * Short seeded dataset lines (~110 bytes): a million of them make a ~100 MB document. About 2.5% carry one
 * mistake, a finding each; a running number keeps the good lines unique, so duplicates are only the made ones.
 */
function shortLines(seed: number, count: number): string[] {
  const rand = seeded(seed);
  const words = (n: number): string => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(rand() < 0.5 ? ZH[Math.floor(rand() * ZH.length)] : EN[Math.floor(rand() * EN.length)]);
    return out.join(' ');
  };
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const good = JSON.stringify({ messages: [{ role: 'user', content: `${words(3)} #${i}` }, { role: 'assistant', content: words(5) }] });
    if (rand() >= 0.025) {
      lines.push(good);
      continue;
    }
    switch (Math.floor(rand() * 8)) {
      case 0:
        lines.push(good.slice(0, good.length - 3));
        break;
      case 1:
        lines.push(JSON.stringify([good]));
        break;
      case 2:
        lines.push(JSON.stringify({ conversations: [{ from: 'human', value: words(3) }] }));
        break;
      case 3:
        lines.push(JSON.stringify({ messages: [{ role: 'user', content: words(3) }] }).replace(']', `,{"role":"user","content":"#${i}"}]`));
        break;
      case 4:
        lines.push(JSON.stringify({ id: i, messages: [{ role: 'user', content: words(2) }, { role: 'assistant', content: words(2) }] }));
        break;
      case 5:
        lines.push(JSON.stringify({ messages: [{ role: 'user', content: `${words(2)} #${i}` }, { role: 'assistant', content: ' ' }] }));
        break;
      case 6:
        lines.push('');
        break;
      default:
        lines.push(lines.length > 0 ? lines[Math.floor(rand() * lines.length)] || good : good);
    }
  }
  return lines;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** VmRSS and VmHWM of a process, in bytes (Linux). */
function residentMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(/(\d+)\s*kB/.exec(status.split('\n').find((l) => l.startsWith(name)) ?? '')?.[1] ?? NaN) * 1024;
  return { rss: field('VmRSS:'), peak: field('VmHWM:') };
}

/** Edits of one line each: typing and deleting inside lines, inserting, deleting and copying whole lines. */
async function editBench(options: LspBenchOptions): Promise<LspBenchResult['edits']> {
  const log = options.log ?? (() => undefined);
  const count = options.lines ?? 1_000_000;
  const lines = shortLines(42, count);
  const client = await TestClient.start({ env: { FINETUNE_LSP_TIMINGS: '1' }, mirror: false });
  try {
    const uri = 'file:///bench/one-million-lines.jsonl';
    let started = performance.now();
    await client.open(uri, lines.join('\n') + '\n');
    const opened = await client.diagnosticsOf(uri, undefined, 120_000);
    const openMs = performance.now() - started;
    await client.waitFor('status', () => client.statuses.get(uri) !== undefined, 60_000);
    const status = client.statuses.get(uri);
    const findings = (status?.errors ?? 0) + (status?.warnings ?? 0);
    await client.waitFor('the server log of the open', () => client.logs.some((l) => l.startsWith('Checked')), 60_000);
    log(`opened ${count.toLocaleString('en-US')} lines in ${openMs.toFixed(0)} ms: ${findings.toLocaleString('en-US')} findings, ${opened.length} diagnostics published`);
    log(`  server: ${client.logs.find((l) => l.startsWith('Checked')) ?? ''}`);

    const rand = seeded(7);
    const server: number[] = [];
    const roundTrip: number[] = [];
    const edits = options.edits ?? 50;
    for (let k = 0; k < edits; k++) {
      const i = Math.floor(rand() * (lines.length - 1));
      const line = lines[i];
      let change: { range: { start: { line: number; character: number }; end: { line: number; character: number } }; text: string };
      switch (k % 10) {
        case 7: // a new line after line i
          change = { range: { start: { line: i, character: line.length }, end: { line: i, character: line.length } }, text: `\n${lines[(i * 7) % lines.length]}x` };
          lines.splice(i + 1, 0, `${lines[(i * 7) % lines.length]}x`);
          break;
        case 8: // delete line i
          change = { range: { start: { line: i, character: 0 }, end: { line: i + 1, character: 0 } }, text: '' };
          lines.splice(i, 1);
          break;
        case 9: // make line i a copy of another
          change = { range: { start: { line: i, character: 0 }, end: { line: i, character: line.length } }, text: lines[(i * 3) % lines.length] };
          lines[i] = lines[(i * 3) % lines.length];
          break;
        default: {
          // Type or delete one character inside the line (inside a string it stays valid; elsewhere it breaks).
          const at = Math.floor(rand() * line.length);
          if (k % 2 === 0) {
            change = { range: { start: { line: i, character: at }, end: { line: i, character: at } }, text: 'x' };
            lines[i] = line.slice(0, at) + 'x' + line.slice(at);
          } else {
            change = { range: { start: { line: i, character: at }, end: { line: i, character: at + 1 } }, text: '' };
            lines[i] = line.slice(0, at) + line.slice(at + 1);
          }
        }
      }
      const timings = client.timings.length;
      started = performance.now();
      await client.change(uri, [change]);
      await client.diagnosticsOf(uri, undefined, 30_000);
      roundTrip.push(performance.now() - started);
      await client.waitFor('timing', () => client.timings.length > timings);
      server.push(client.timings[client.timings.length - 1].ms);
    }
    return {
      lines: count,
      findings,
      openMs,
      count: edits,
      serverMedianMs: percentile(server, 0.5),
      serverP95Ms: percentile(server, 0.95),
      serverMaxMs: Math.max(...server),
      roundTripMedianMs: percentile(roundTrip, 0.5),
      roundTripP95Ms: percentile(roundTrip, 0.95),
    };
  } finally {
    await client.stop();
  }
}

/** Opens a ~100 MB mixed Chinese/English document and reads the server's resident memory. */
async function memoryBench(options: LspBenchOptions): Promise<LspBenchResult['memory']> {
  const log = options.log ?? (() => undefined);
  const bytes = options.memoryBytes ?? 100 * 2 ** 20;
  const path = join(__dirname, '..', '.bench-data', `lsp-mixed-${bytes}.jsonl`);
  if (await ensureDataset(path, 2024, bytes)) log(`generated ${path}`);
  const file = readFileSync(path);
  const text = file.toString('utf8');
  const client = await TestClient.start({ mirror: false });
  try {
    const pid = client.child.pid as number;
    const before = residentMemory(pid);
    log(`server started: ${(before.rss / 2 ** 20).toFixed(0)} MB resident`);
    const uri = 'file:///bench/mixed-100mb.jsonl';
    const started = performance.now();
    await client.open(uri, text);
    await client.diagnosticsOf(uri, undefined, 120_000);
    const openMs = performance.now() - started;
    const atOpen = residentMemory(pid);
    // The server collects garbage after opening a document this big (16 M UTF-16 units or more).
    if (text.length >= 16 << 20) await client.waitFor('the collection after opening', () => client.logs.some((l) => l.startsWith('Memory after opening')), 60_000);
    await client.waitFor('token counting under way', () => (client.statuses.get(uri)?.tokens ?? 0) > 0, 60_000);
    // V8 unmaps freed pages on a background thread: sample until the figure holds still.
    let settled = residentMemory(pid);
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const next = residentMemory(pid);
      const stable = Math.abs(next.rss - settled.rss) < 2 ** 20;
      settled = next;
      if (stable) break;
    }
    return {
      fileBytes: file.length,
      lines: text.split('\n').length - 1,
      openMs,
      rssAtOpenBytes: atOpen.rss,
      rssBytes: settled.rss,
      peakBytes: settled.peak,
      rssRatio: settled.rss / file.length,
      peakRatio: settled.peak / file.length,
    };
  } finally {
    await client.stop();
  }
}

/** Runs both parts and returns their figures; prints progress through `options.log`. */
export async function benchLsp(options: LspBenchOptions = {}): Promise<LspBenchResult> {
  const edits = await editBench(options);
  const memory = await memoryBench(options);
  return { edits, memory };
}

/** The figures as the README shows them. */
export function formatLspBench(r: LspBenchResult): string {
  const mb = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MB`;
  const e = r.edits;
  const m = r.memory;
  return [
    `Language server, one-line edits in a ${e.lines.toLocaleString('en-US')}-line document (${e.findings.toLocaleString('en-US')} findings), ${e.count} edits:`,
    `  server time, change received → diagnostics published: median ${e.serverMedianMs.toFixed(2)} ms, p95 ${e.serverP95Ms.toFixed(2)} ms, max ${e.serverMaxMs.toFixed(2)} ms (target: median ≤ 15 ms)`,
    `  round trip seen by the client: median ${e.roundTripMedianMs.toFixed(2)} ms, p95 ${e.roundTripP95Ms.toFixed(2)} ms; opening took ${e.openMs.toFixed(0)} ms`,
    `Language server memory, ${mb(m.fileBytes)} mixed Chinese/English document (${m.lines.toLocaleString('en-US')} lines), opened in ${m.openMs.toFixed(0)} ms:`,
    `  resident after opening ${mb(m.rssBytes)} = ${m.rssRatio.toFixed(2)}× the file (target < 3×), tokenizer loaded and counting`,
    `  (${mb(m.rssAtOpenBytes)} when the diagnostics arrived, before the server dropped the open message; peak ${mb(m.peakBytes)} = ${m.peakRatio.toFixed(2)}×)`,
  ].join('\n');
}

if (typeof require !== 'undefined' && require.main === module) {
  benchLsp({ log: (line) => console.log(line) }).then(
    (result) => console.log(formatLspBench(result)),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
