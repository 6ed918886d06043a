// Refused requests: one error class that carries the OpenAI-shaped body (`type`, `code`, `param`) and the HTTP
// status that goes with its type (ERROR_STATUS), and one writer for every refusal, so that no route builds an
// error body by hand.
import type { ServerResponse } from 'node:http';
import { type ApiError, type ApiErrorBody, type ApiErrorType, ERROR_STATUS } from '../../common/api';

/** A request the backend refuses; the HTTP layer turns it into `{"error":{…}}` with its status. */
export class HttpError extends Error {
  /** The error's `code` doubles as its reason, as other errors of the project carry one. */
  readonly reason: string;

  constructor(
    readonly type: ApiErrorType,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /**
     * Extra fields of the body (`findings`, `total_findings`), headers (`Allow`), and a status for the few
     * refusals HTTP has its own code for though their type is a 400's (405 Method Not Allowed).
     */
    readonly extra: { body?: Partial<ApiError>; headers?: Record<string, string>; status?: number } = {},
  ) {
    super(message);
    this.name = 'HttpError';
    this.reason = code ?? type;
  }

  /** The HTTP status of this error's type. */
  get status(): number {
    return this.extra.status ?? ERROR_STATUS[this.type];
  }

  /** The response body. */
  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code, ...this.extra.body } };
  }

  static is(e: unknown): e is HttpError {
    return e instanceof HttpError;
  }
}

/** 400 `invalid_request_error`, the most common refusal: what is wrong with which field. */
export function invalid(message: string, param: string | null, code = 'invalid_value'): HttpError {
  return new HttpError('invalid_request_error', message, code, param);
}

/** 404, the same for a missing thing and another key's thing (a key learns nothing about others). */
export function notFound(message: string, code: string | null = 'not_found', param: string | null = null): HttpError {
  return new HttpError('not_found_error', message, code, param);
}

/** Writes `error` as the response, unless headers already went out (then the connection is all that is left). */
export function sendError(res: ServerResponse, error: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(error.body());
  res.statusCode = error.status;
  for (const [name, value] of Object.entries(error.extra.headers ?? {})) res.setHeader(name, value);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
