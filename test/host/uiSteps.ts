// The shape of a Chromium UI test: a sequence of user-visible steps, each a subtest, each leaving a screenshot in
// the session's artefacts folder; after a failing step the rest are skipped (their screenshots would only show
// that failure), and the failing one adds a FAILED screenshot and the host's logs to its error.
import { relative, join } from 'node:path';
import { it, type TestContext } from 'node:test';
import type { Locator } from 'playwright-core';
import { ROOT } from '../../scripts/host/codeServer';
import type { HostSession } from './session';

/** A file-name-safe form of a step's name. */
export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** Keeps a named picture of the whole window, or of one part of it (a form, the tree), in the middle of a step. */
export type Snap = (label: string, part?: Locator) => Promise<void>;

/**
 * Makes the `step` function of one UI test file. `session` is read when a step runs (the `before` hook opens it).
 * Steps without their own timeout use `timeoutMs`.
 */
export function uiSteps(session: () => HostSession, timeoutMs?: number): (name: string, body: (snap: Snap) => Promise<void>, stepTimeoutMs?: number) => void {
  let shot = 0;
  let failed: string | undefined;
  return (name, body, stepTimeoutMs = timeoutMs) => {
    it(name, stepTimeoutMs === undefined ? {} : { timeout: stepTimeoutMs + 30_000 }, async (t: TestContext) => {
      if (failed !== undefined) {
        t.skip(`an earlier step failed: ${failed}`);
        return;
      }
      const { page, dir } = session();
      const number = String(++shot).padStart(2, '0');
      const file = `${number}-${slug(name)}`;
      const snap: Snap = async (label, part) => {
        const path = join(dir, `${number}a-${slug(label)}.png`);
        await (part ?? page).screenshot({ path });
        t.diagnostic(`screenshot: ${relative(ROOT, path)}`);
      };
      try {
        await body(snap);
      } catch (error) {
        failed = name;
        const screenshot = join(dir, `${file}-FAILED.png`);
        await page.screenshot({ path: screenshot }).catch(() => undefined);
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`UI step "${name}" failed: ${message}\nscreenshot: ${relative(ROOT, screenshot)}\n${session().diagnose()}`, { cause: error });
      }
      const screenshot = join(dir, `${file}.png`);
      await page.screenshot({ path: screenshot });
      t.diagnostic(`screenshot: ${relative(ROOT, screenshot)}`);
    });
  };
}
