import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's collector, exposed on first use; undefined when this runtime refuses to expose it. */
let collector: (() => void) | undefined | null = null;

/**
 * Runs a full garbage collection now. The document service calls it once after opening a big document: the
 * open message arrives as bytes, then as decoded JSON text, then as the document string, and the server keeps
 * only its own UTF-8 copy; left to itself V8 holds those few hundred megabytes for a long while, which is
 * most of the server's resident memory on a 100 MB file. Exposing the collector at run time (rather than
 * with --expose-gc on the command line) keeps every way of starting the server (VS Code, the CLI) the same.
 */
export function collectGarbage(): void {
  if (collector === null) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      collector = typeof gc === 'function' ? (gc as () => void) : undefined;
    } catch {
      collector = undefined;
    }
  }
  collector?.();
}
