// Why the embedded engine stops a job or refuses a request, as a code the backend maps to the job's error (or a
// chat error) without reading the message text.
import type { JobErrorCode } from '../../../common/api';

/** A failure with a code from the protocol (`invalid_dataset`, `model_unavailable`, `nan_loss`, …). */
export class EngineError extends Error {
  constructor(
    readonly code: JobErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }

  /** True when `e` is an EngineError. */
  static is(e: unknown): e is EngineError {
    return e instanceof EngineError;
  }
}

/** Raised inside a job or a generation when it was asked to stop (stdin closed, SIGTERM, `chat_cancel`). */
export class CancelledError extends Error {
  readonly reason = 'cancelled';

  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }

  /** True when `e` is a CancelledError. */
  static is(e: unknown): e is CancelledError {
    return e instanceof CancelledError;
  }
}

/** One line for a person: the message of an Error (first line only), or the value as text. */
export function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const line = text.split('\n', 1)[0];
  return line.length > 500 ? `${line.slice(0, 497)}...` : line;
}

/** Lets pending I/O (stdin closing, a signal, a `chat_cancel`) run before the next piece of CPU work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
