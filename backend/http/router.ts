// Routes as data: a method, a path pattern and a handler each, matched segment by segment. A path that
// matches no pattern is a 404; one that matches with another method is a 405 with the methods it has.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Owner } from '../runtime';
import { HttpError } from './errors';

/** The methods the API uses (HEAD is answered as GET). */
export type Method = 'GET' | 'POST' | 'DELETE';

/** What a handler gets: the request, its parsed URL, the path's parameters and who asks. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  /** Empty for public routes. */
  owner: Owner;
}

/** Answers one request; a thrown HttpError becomes the error response. */
export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  method: Method;
  /** Segments: literal, `:name` (one segment) or `*name` (the rest of the path, slashes and all). */
  segments: string[];
  handler: Handler;
  public: boolean;
}

/** The outcome of matching a request. */
export type Match = { route: { handler: Handler; public: boolean }; params: Record<string, string> } | { allowed: Method[] } | undefined;

/** The backend's routes. */
export class Router {
  private readonly routes: Route[] = [];

  /** Adds a route; `isPublic` ones need no API key. */
  add(method: Method, pattern: string, handler: Handler, isPublic = false): this {
    this.routes.push({ method, segments: pattern.split('/').slice(1), handler, public: isPublic });
    return this;
  }

  /** The route for `method` and `pathname`, the methods the path has when none is `method`, or undefined. */
  match(method: string, pathname: string): Match {
    let segments: string[];
    try {
      segments = pathname.split('/').slice(1).map(decodeURIComponent);
    } catch {
      return undefined;
    }
    const allowed: Method[] = [];
    for (const route of this.routes) {
      const params = matchSegments(route.segments, segments);
      if (!params) continue;
      // HEAD is answered as GET without a body (Node drops it).
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
      if (!allowed.includes(route.method)) allowed.push(route.method);
    }
    return allowed.length > 0 ? { allowed } : undefined;
  }
}

function matchSegments(pattern: string[], path: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p.startsWith('*')) {
      const rest = path.slice(i).join('/');
      if (rest === '') return undefined;
      params[p.slice(1)] = rest;
      return params;
    }
    if (i >= path.length) return undefined;
    if (p.startsWith(':')) {
      if (path[i] === '') return undefined;
      params[p.slice(1)] = path[i];
    } else if (p !== path[i]) {
      return undefined;
    }
  }
  return pattern.length === path.length ? params : undefined;
}

/** 405 with the `Allow` header. */
export function methodNotAllowed(method: string, pathname: string, allowed: Method[]): HttpError {
  const order: string[] = ['GET', 'POST', 'DELETE'];
  const sorted = [...allowed].sort((a, b) => order.indexOf(a) - order.indexOf(b));
  const allow = sorted.includes('GET') ? [...sorted, 'HEAD'] : sorted;
  return new HttpError('invalid_request_error', `${method} is not allowed on ${pathname}; use ${sorted.join(' or ')}.`, 'method_not_allowed', null, {
    headers: { Allow: allow.join(', ') },
    status: 405,
  });
}

/** 404 for a path no route has. */
export function unknownRoute(method: string, pathname: string): HttpError {
  return new HttpError('not_found_error', `Unknown route: ${method} ${pathname}.`, 'unknown_route');
}
