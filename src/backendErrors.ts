// Why a request to a training backend failed. Callers branch on `reason` (and on `status`/`apiError.code` for
// `http`), never on the message: the message is for the person, written so they can act on it.
import type { ApiError } from '../common/api';

/**
 * Why a backend request failed:
 * - `unreachable`: no connection (refused, DNS, reset before an answer); check the URL and that it runs.
 * - `unauthorized`: 401, the API key is missing or wrong.
 * - `http`: any other refusal, with the status and the API's error body (a refused dataset's findings included).
 * - `protocol`: the answer is not what the API declares (not JSON, a wrong shape, a broken stream).
 * - `cancelled`: the caller aborted (its AbortSignal).
 * - `timeout`: no answer (or, for uploads and streams, no progress) in time.
 */
export type BackendErrorReason = 'unreachable' | 'unauthorized' | 'http' | 'protocol' | 'cancelled' | 'timeout';

/** A failed backend request, with its reason. */
export class BackendError extends Error {
  override readonly name = 'BackendError';

  constructor(
    readonly reason: BackendErrorReason,
    message: string,
    readonly details: {
      /** The HTTP status, when the backend answered. */
      status?: number;
      /** The API's error body (type, code, param, findings), when there was one. */
      apiError?: ApiError;
      /** `METHOD /path` of the request, for logs. */
      request?: string;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: details.cause });
  }

  /** The HTTP status, when the backend answered. */
  get status(): number | undefined {
    return this.details.status;
  }

  /** The API's error body, when there was one. */
  get apiError(): ApiError | undefined {
    return this.details.apiError;
  }

  static is(error: unknown): error is BackendError {
    return error instanceof BackendError;
  }
}
