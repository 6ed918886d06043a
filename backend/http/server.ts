// The HTTP server: authenticates, routes, turns every refusal into an OpenAI-shaped error body, logs one line
// per request, and hands authenticated WebSocket upgrades of `/v1/events` to the runtime's hub. Timeouts keep
// a slow or silent client from holding a socket: headers must arrive within 20 s, a JSON body within 30 s
// (body.ts), and a connection that stays idle for 2 minutes is closed. Uploads have no overall deadline (a
// 2 GiB file may take long), only the idle one.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { JobRuntime, Log, Owner } from '../runtime';
import type { KeyRing } from './auth';
import { HttpError, sendError } from './errors';
import { methodNotAllowed, type Router, unknownRoute } from './router';

/** The WebSocket route. */
export const EVENTS_PATH = '/v1/events';

/** What the server is made of. */
export interface ServerParts {
  router: Router;
  keys: KeyRing;
  runtime: JobRuntime;
  log: Log;
}

/** A short form of an owner for log lines (the owner id is already a hash; 8 digits tell keys apart). */
function shortOwner(owner: Owner | undefined): string {
  return owner ? owner.slice(0, 8) : '-';
}

/** Creates the server (not listening yet). */
export function createApiServer(parts: ServerParts): Server {
  const server = createServer((req, res) => void handle(parts, req, res));
  server.headersTimeout = 20_000;
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  server.timeout = 120_000;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(parts, req, socket, head));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A malformed request line or header: answer 400 when the socket can still take it.
    if (socket.writable && error.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

async function handle(parts: ServerParts, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://backend');
  } catch {
    url = new URL('http://backend/');
  }
  let owner: Owner | undefined;
  // The path only: a query could carry something secret, and the log is not the place for it.
  res.once('close', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const status = res.writableFinished ? String(res.statusCode) : `${res.statusCode}(closed)`;
    parts.log.info(`${method} ${url.pathname} ${status} ${ms.toFixed(1)}ms ${shortOwner(owner)}`);
  });
  try {
    const match = parts.router.match(method, url.pathname);
    if (!match) throw unknownRoute(method, url.pathname);
    if ('allowed' in match) {
      // A wrong method on a real route still needs a key: an unauthenticated caller learns nothing of routes.
      owner = parts.keys.authenticate(req);
      throw methodNotAllowed(method, url.pathname, match.allowed);
    }
    if (!match.route.public) owner = parts.keys.authenticate(req);
    await match.route.handler({ req, res, url, params: match.params, owner: owner ?? '' });
  } catch (error) {
    if (HttpError.is(error)) {
      sendError(res, error);
      return;
    }
    parts.log.error(`${method} ${url.pathname}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    sendError(res, new HttpError('server_error', 'The backend failed to answer this request; its log has the details.', 'internal_error'));
  }
}

/** Writes a plain HTTP error on a socket that was asking for an upgrade, then closes it. */
function refuseUpgrade(socket: Duplex, error: HttpError): void {
  const body = JSON.stringify(error.body());
  const reason = error.status === 401 ? 'Unauthorized' : error.status === 404 ? 'Not Found' : 'Bad Request';
  const headers = [
    `HTTP/1.1 ${error.status} ${reason}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(error.extra.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    'Connection: close',
  ];
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}

function upgrade(parts: ServerParts, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  let pathname = '/';
  try {
    pathname = new URL(req.url ?? '/', 'http://backend').pathname;
  } catch {
    // Falls through to the 404 below.
  }
  let owner: Owner | undefined;
  try {
    if (pathname !== EVENTS_PATH || req.method !== 'GET') throw unknownRoute(req.method ?? 'GET', pathname);
    owner = parts.keys.authenticate(req, true);
  } catch (error) {
    const refusal = HttpError.is(error) ? error : new HttpError('server_error', 'The upgrade failed.', 'internal_error');
    parts.log.info(`UPGRADE ${pathname} ${refusal.status} ${shortOwner(owner)}`);
    refuseUpgrade(socket, refusal);
    return;
  }
  parts.log.info(`UPGRADE ${pathname} 101 ${shortOwner(owner)}`);
  parts.runtime.handleUpgrade(req, socket, head, owner);
}
