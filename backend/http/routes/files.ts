// `/v1/files`: upload (multipart, streamed to disk and checked on the way), list, get, delete, download.
import type { FileObject } from '../../../common/api';
import { isIdOf } from '../../../common/api';
import type { JobRuntime } from '../../runtime';
import { type FileStore, type Upload, UploadError } from '../../store/files';
import { checkDeclaredLength, discardRest, tooLarge } from '../body';
import { HttpError, invalid, notFound, sendJson } from '../errors';
import { multipartBoundary, multipartEvents } from '../multipart';
import { afterParam, limitParam, sendFile, sendList } from '../query';
import type { RequestContext, Router } from '../router';

/** Files per page: OpenAI lists up to 10,000 files at once, and so does this backend by default. */
export const FILES_LIMIT = { fallback: 10_000, max: 10_000 };

/** Room for the multipart envelope (delimiters, part headers, the purpose field) on top of the file's bytes. */
const MULTIPART_OVERHEAD = 64 * 1024;

/** What the file routes use. */
export interface FileRouteDeps {
  files: FileStore;
  runtime: JobRuntime;
  maxUploadBytes: number;
}

function noSuchFile(id: string): HttpError {
  return notFound(`No file with id '${id}'.`, 'file_not_found');
}

/** Reads the multipart body: the `file` part into an upload, the `purpose` field as text. */
async function receive(ctx: RequestContext, deps: FileRouteDeps): Promise<FileObject> {
  const { req, res } = ctx;
  const boundary = multipartBoundary(req.headers['content-type']);
  if (!boundary) {
    const got = req.headers['content-type'];
    throw new HttpError(
      'unsupported_media_type',
      `Upload the file as multipart/form-data with a boundary (fields "purpose" and "file"), got ${got ? `'${got}'` : 'no Content-Type'}.`,
      'unsupported_media_type',
    );
  }
  let upload: Upload | undefined;
  let filename: string | undefined;
  let field: 'file' | 'purpose' | undefined;
  let purpose: string | undefined;
  try {
    // Leaving the loop early (a refusal) must not destroy the request: the socket still has to carry the answer.
    const body = req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
    for await (const event of multipartEvents(body, boundary)) {
      if (event.type === 'part') {
        if (event.name === 'file') {
          if (upload) throw invalid('The upload has two "file" parts; send one file per request.', 'file');
          upload = await deps.files.begin(deps.maxUploadBytes);
          filename = event.filename;
        } else if (event.name === 'purpose') {
          purpose = '';
        } else {
          throw invalid(`Unknown form field '${event.name}'; expected "purpose" and "file".`, event.name, 'unknown_parameter');
        }
        field = event.name;
      } else if (field === 'file' && upload) {
        await upload.write(event.chunk);
      } else if (field === 'purpose' && purpose !== undefined) {
        purpose += event.chunk.toString('utf8');
        if (purpose.length > 256) throw invalid('The "purpose" field is too long; expected "fine-tune".', 'purpose');
      }
    }
    if (purpose === undefined) throw invalid('Missing required parameter: \'purpose\' (expected "fine-tune").', 'purpose', 'missing_required_parameter');
    if (purpose.trim() !== 'fine-tune') throw invalid(`Invalid value for 'purpose': this backend takes only "fine-tune", got '${purpose}'.`, 'purpose');
    if (!upload) throw invalid('Missing required parameter: \'file\' (the dataset, as a file part).', 'file', 'missing_required_parameter');
    return await upload.finish(ctx.owner, filename);
  } catch (error) {
    await upload?.abort();
    if (UploadError.is(error) && error.reason === 'invalid_dataset') {
      throw new HttpError('invalid_request_error', error.message, 'invalid_dataset', 'file', {
        body: { findings: error.findings, total_findings: error.totalFindings },
      });
    }
    // The rest of a refused body is read and dropped for a moment, so that the client gets the answer.
    discardRest(req, res);
    if (UploadError.is(error) && error.reason === 'too_large') throw tooLarge(deps.maxUploadBytes, 'file');
    if (UploadError.is(error)) throw new HttpError('invalid_request_error', error.message, error.reason, 'file');
    if (HttpError.is(error)) throw error;
    if (req.destroyed || !req.complete) throw new HttpError('invalid_request_error', 'The upload ended before it was complete.', 'incomplete_body');
    throw error;
  }
}

/** Adds the file routes. */
export function fileRoutes(router: Router, deps: FileRouteDeps): void {
  router.add('POST', '/v1/files', async (ctx) => {
    try {
      checkDeclaredLength(ctx.req, deps.maxUploadBytes + MULTIPART_OVERHEAD, 'upload');
    } catch {
      discardRest(ctx.req, ctx.res);
      throw tooLarge(deps.maxUploadBytes, 'file');
    }
    sendJson(ctx.res, 200, await receive(ctx, deps));
  });

  router.add('GET', '/v1/files', ({ res, url, owner }) => {
    const after = afterParam(url);
    const page = deps.files.list(owner, after, limitParam(url, FILES_LIMIT.fallback, FILES_LIMIT.max));
    if (!page) throw invalid(`Invalid value for 'after': no file with id '${after ?? ''}'.`, 'after');
    sendList(res, page);
  });

  router.add('GET', '/v1/files/:file', ({ res, params, owner }) => {
    const file = deps.files.get(owner, params.file);
    if (!file) throw noSuchFile(params.file);
    sendJson(res, 200, file);
  });

  router.add('DELETE', '/v1/files/:file', async ({ res, params, owner }) => {
    const id = params.file;
    if (!isIdOf('file', id) || !deps.files.get(owner, id)) throw noSuchFile(id);
    if (deps.runtime.fileInUse(owner, id)) {
      throw new HttpError('conflict_error', `File '${id}' is used by a job that has not finished; cancel the job or wait for it, then delete the file.`, 'file_in_use', 'file_id');
    }
    if (!(await deps.files.delete(owner, id))) throw noSuchFile(id);
    sendJson(res, 200, { id, object: 'file', deleted: true });
  });

  router.add('GET', '/v1/files/:file/content', async ({ res, params, owner }) => {
    const file = deps.files.get(owner, params.file);
    const path = deps.files.contentPath(owner, params.file);
    if (!file || !path) throw noSuchFile(params.file);
    await sendFile(res, path, 'application/jsonl', file.filename);
  });
}
