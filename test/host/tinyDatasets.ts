// The small datasets that the in-host suites and the Chromium UI tests train the tiny model on. Plain strings,
// no `vscode`: the UI tests (plain Node) and the suites (bundled into the extension host) both import them.

/** The system prompt of {@link arithmeticDataset}: the dashboards show it with the run's samples. */
export const ARITHMETIC_SYSTEM_PROMPT = 'You answer arithmetic questions with the number only.';

/** `count` short conversations that share a system prompt: "What is i plus i+1?" → "2i+1" (24 by default). */
export function arithmeticDataset(count = 24): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(
      JSON.stringify({
        messages: [
          { role: 'system', content: ARITHMETIC_SYSTEM_PROMPT },
          { role: 'user', content: `What is ${i} plus ${i + 1}?` },
          { role: 'assistant', content: `${i + i + 1}` },
        ],
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `count` short conversations without a system prompt: "What is i plus i?" → "2i." (12 by default). */
export function doublingDataset(count = 12): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(JSON.stringify({ messages: [{ role: 'user', content: `What is ${i} plus ${i}?` }, { role: 'assistant', content: `${i + i}.` }] }));
  }
  return `${lines.join('\n')}\n`;
}

/** A dataset's bytes, for BackendClient.uploadFile. */
export function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
