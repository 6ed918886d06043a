/**
 * Why a dataset language-server operation failed. Callers branch on `reason`, never on the message text; the
 * message is for the user, the cause for the log.
 */
export type DatasetClientErrorReason =
  /** `dist/server.js` is not there: the extension was not built. */
  | 'server-missing'
  /** The server process did not start or did not answer `initialize`. */
  | 'start-failed'
  /** The server stopped (crashed too often, or was stopped) and the operation needs it. */
  | 'not-running'
  /** A request got no answer in time. */
  | 'timeout'
  /** The server answered with an error. */
  | 'request-failed'
  /** The server's answer did not have the shape the protocol declares. */
  | 'protocol'
  /** The file is too large for VS Code to sync to extensions, and the operation needs the open document. */
  | 'too-large'
  /** The command needs a dataset and none is open or chosen. */
  | 'no-dataset';

/** An error of the dataset client, with its reason. */
export class DatasetClientError extends Error {
  override readonly name = 'DatasetClientError';

  constructor(
    readonly reason: DatasetClientErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static is(error: unknown): error is DatasetClientError {
    return error instanceof DatasetClientError;
  }
}

/** A one-line description of any thrown value, for messages and logs. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : JSON.stringify(error) ?? String(error);
}
