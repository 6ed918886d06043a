// `/v1/fine_tuning/jobs`: create (checked against the schema, the owner's files and the model catalogue, with
// every hyper-parameter filled in), list, get, cancel, events, metrics (ours: the metrics events as columns),
// checkpoints and the adapters' files. Ids are checked with isIdOf before the runtime is asked, so a malformed one
// is a 404 like a missing one.
import { randomInt } from 'node:crypto';
import type { CreateJobRequest, FineTuningJob, Hyperparameters, HyperparametersInput } from '../../../common/api';
import { isIdOf } from '../../../common/api';
import { checkCreateJobRequest } from '../../../common/apiSchemas';
import { HyperparameterError, resolveHyperparameters } from '../../hyperparameters';
import type { ModelCatalogue } from '../../models';
import type { JobRuntime, NewJob, Owner } from '../../runtime';
import { type FileStore, newId } from '../../store/files';
import { readJson } from '../body';
import { type HttpError, invalid, notFound, sendJson } from '../errors';
import { afterParam, limitParam, sendFile, sendList } from '../query';
import type { Router } from '../router';

/** Jobs per page: OpenAI's default and most. */
export const JOBS_LIMIT = { fallback: 20, max: 100 };
/** Events per page: OpenAI's default, and long pages for a client that catches up by polling. */
export const EVENTS_LIMIT = { fallback: 20, max: 1000 };
/** Checkpoints per page: OpenAI's default. */
export const CHECKPOINTS_LIMIT = { fallback: 10, max: 100 };

/** What the job routes use. */
export interface JobRouteDeps {
  files: FileStore;
  models: ModelCatalogue;
  runtime: JobRuntime;
}

const HYPERPARAMETERS_PATH = 'method.supervised.hyperparameters';

function noSuchJob(id: string): HttpError {
  return notFound(`No fine-tuning job with id '${id}'.`, 'job_not_found');
}

/** Builds the job and the engine's spec from a checked request; throws a 400 naming the field at fault. */
export async function buildJob(owner: Owner, request: CreateJobRequest, deps: JobRouteDeps, gpusFound: number): Promise<NewJob> {
  const model = await deps.models.find(request.model);
  if (!model) {
    const ids = (await deps.models.list()).map((m) => m.object.id);
    throw invalid(`Unknown base model '${request.model}'; GET /v1/models lists those this backend trains (${ids.join(', ')}).`, 'model', 'model_not_found');
  }
  if (model.object.available === false) throw invalid(`The base model '${model.object.id}' is not available: ${model.object.unavailable_reason ?? 'unknown reason'}`, 'model', 'model_unavailable');

  const fileOf = (param: 'training_file' | 'validation_file', id: string): string => {
    const path = deps.files.contentPath(owner, id);
    if (!path) throw invalid(`Invalid value for '${param}': no file with id '${id}' (upload it with POST /v1/files first).`, param, 'file_not_found');
    return path;
  };
  const trainingPath = fileOf('training_file', request.training_file);
  const validationId = request.validation_file ?? null;
  const validationPath = validationId === null ? null : fileOf('validation_file', validationId);

  // OpenAI's older top-level `hyperparameters` and the method's; the method's win field by field.
  const input: HyperparametersInput = { ...request.hyperparameters, ...request.method?.supervised?.hyperparameters };
  let hyperparameters: Hyperparameters;
  try {
    hyperparameters = resolveHyperparameters(input, model.defaults, model.contextLength, validationPath !== null, model.capabilities);
  } catch (error) {
    if (!HyperparameterError.is(error)) throw error;
    const where = request.method?.supervised?.hyperparameters?.[error.param] !== undefined || request.hyperparameters?.[error.param] === undefined ? HYPERPARAMETERS_PATH : 'hyperparameters';
    throw invalid(error.message, `${where}.${error.param}`);
  }

  // The embedded engine trains on the CPU; GPU engines take one GPU unless told otherwise.
  const cpuOnly = model.engine === 'embedded';
  const gpus = request.gpus ?? (cpuOnly || gpusFound === 0 ? 0 : 1);
  if (cpuOnly && gpus > 0) throw invalid(`Invalid value for 'gpus': the ${model.engine} engine of '${model.object.id}' runs on the CPU; leave gpus out or set it to 0.`, 'gpus');
  if (gpus > Math.max(gpusFound, 0) && !cpuOnly) throw invalid(`Invalid value for 'gpus': this backend has ${gpusFound} GPU${gpusFound === 1 ? '' : 's'}, the job asks for ${gpus}.`, 'gpus');

  const seed = request.seed ?? randomInt(0, 2147483647);
  const suffix = request.suffix ?? null;
  const metadata = request.metadata ?? null;
  const id = newId('job');
  const job: FineTuningJob = {
    id,
    object: 'fine_tuning.job',
    created_at: Math.floor(Date.now() / 1000),
    finished_at: null,
    model: model.object.id,
    fine_tuned_model: null,
    organization_id: 'org-local',
    status: 'validating_files',
    training_file: request.training_file,
    validation_file: validationId,
    hyperparameters,
    method: { type: 'supervised', supervised: { hyperparameters } },
    result_files: [],
    trained_tokens: null,
    error: null,
    seed,
    suffix,
    metadata,
    estimated_finish: null,
    integrations: [],
    user_provided_suffix: suffix,
    started_at: null,
    queue_position: null,
    engine: model.engine,
    gpus,
    progress: null,
    last_event_seq: 0,
  };
  return {
    owner,
    job,
    spec: { job_id: id, model: model.ref, training_file: trainingPath, validation_file: validationPath, hyperparameters, seed, gpus },
  };
}

/** `metadata[key]=value` query filters (OpenAI's), as pairs. */
function metadataFilter(url: URL): [string, string][] {
  const pairs: [string, string][] = [];
  for (const [name, value] of url.searchParams) {
    const match = /^metadata\[(.+)\]$/.exec(name);
    if (match) pairs.push([match[1], value]);
  }
  return pairs;
}

/** Adds the job routes. */
export function jobRoutes(router: Router, deps: JobRouteDeps): void {
  const { runtime } = deps;
  const jobId = (id: string): string => {
    if (!isIdOf('job', id)) throw noSuchJob(id);
    return id;
  };

  router.add('POST', '/v1/fine_tuning/jobs', async ({ req, res, owner }) => {
    const checked = checkCreateJobRequest(await readJson(req, res));
    if (!checked.ok) throw invalid(checked.error.message, checked.error.param, checked.error.code);
    const newJob = await buildJob(owner, checked.value, deps, runtime.system().gpus.length);
    sendJson(res, 200, await runtime.createJob(newJob));
  });

  router.add('GET', '/v1/fine_tuning/jobs', ({ res, url, owner }) => {
    const after = afterParam(url);
    if (after !== undefined && !isIdOf('job', after)) throw invalid(`Invalid value for 'after': '${after}' is not a job id.`, 'after');
    const limit = limitParam(url, JOBS_LIMIT.fallback, JOBS_LIMIT.max);
    const filter = metadataFilter(url);
    if (filter.length === 0) {
      sendList(res, runtime.listJobs(owner, after, limit));
      return;
    }
    // Filtered: walk the owner's jobs page by page until the page is full (the runtime has no index on metadata).
    const data: FineTuningJob[] = [];
    let cursor = after;
    let more = true;
    while (more && data.length <= limit) {
      const page = runtime.listJobs(owner, cursor, 100);
      for (const job of page.data) {
        if (filter.every(([k, v]) => job.metadata?.[k] === v)) data.push(job);
      }
      more = page.has_more && page.data.length > 0;
      cursor = page.data[page.data.length - 1]?.id;
    }
    sendList(res, { data: data.slice(0, limit), has_more: data.length > limit });
  });

  router.add('GET', '/v1/fine_tuning/jobs/:job', ({ res, params, owner }) => {
    const job = runtime.getJob(owner, jobId(params.job));
    if (!job) throw noSuchJob(params.job);
    sendJson(res, 200, job);
  });

  router.add('POST', '/v1/fine_tuning/jobs/:job/cancel', async ({ res, params, owner }) => {
    const job = await runtime.cancelJob(owner, jobId(params.job));
    if (!job) throw noSuchJob(params.job);
    sendJson(res, 200, job);
  });

  /** `after` of the event routes: a seq, or an event id of the job (OpenAI's cursor); 0 when absent. */
  const afterSeqParam = async (url: URL, owner: Owner, id: string): Promise<number> => {
    const after = afterParam(url);
    if (after === undefined) return 0;
    if (/^\d+$/.test(after) && Number.isSafeInteger(Number(after))) return Number(after);
    if (isIdOf('event', after)) {
      const seq = await runtime.eventSeq(owner, id, after);
      if (seq === undefined) throw invalid(`Invalid value for 'after': job '${id}' has no event '${after}'.`, 'after');
      return seq;
    }
    throw invalid(`Invalid value for 'after': expected a sequence number or an event id (ftevent-…), got '${after}'.`, 'after');
  };

  router.add('GET', '/v1/fine_tuning/jobs/:job/events', async ({ res, url, params, owner }) => {
    const id = jobId(params.job);
    if (!runtime.getJob(owner, id)) throw noSuchJob(id);
    const limit = limitParam(url, EVENTS_LIMIT.fallback, EVENTS_LIMIT.max);
    const page = await runtime.listEvents(owner, id, await afterSeqParam(url, owner, id), limit);
    if (!page) throw noSuchJob(id);
    sendList(res, page);
  });

  // Ours: the metrics events as columns (common/api.ts FineTuningJobMetrics), the whole history in one answer.
  router.add('GET', '/v1/fine_tuning/jobs/:job/metrics', async ({ res, url, params, owner }) => {
    const id = jobId(params.job);
    if (!runtime.getJob(owner, id)) throw noSuchJob(id);
    const slice = runtime.metrics(owner, id, await afterSeqParam(url, owner, id));
    if (!slice) throw noSuchJob(id);
    // The runtime hands over the JSON text itself (assembled from cached pieces); sendJson would only re-encode it.
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(slice.json));
    res.end(slice.json);
  });

  router.add('GET', '/v1/fine_tuning/jobs/:job/checkpoints', ({ res, url, params, owner }) => {
    const id = jobId(params.job);
    const after = afterParam(url);
    if (after !== undefined && !isIdOf('checkpoint', after)) throw invalid(`Invalid value for 'after': '${after}' is not a checkpoint id.`, 'after');
    const page = runtime.listCheckpoints(owner, id, after, limitParam(url, CHECKPOINTS_LIMIT.fallback, CHECKPOINTS_LIMIT.max));
    if (!page) throw noSuchJob(id);
    sendList(res, page);
  });

  const checkpointFiles = async (owner: Owner, job: string, checkpoint: string) => {
    const id = jobId(job);
    if (!isIdOf('checkpoint', checkpoint)) throw notFound(`No checkpoint with id '${checkpoint}'.`, 'checkpoint_not_found');
    const files = await runtime.checkpointFiles(owner, id, checkpoint);
    if (!files) {
      if (!runtime.getJob(owner, id)) throw noSuchJob(id);
      throw notFound(`Job '${id}' has no checkpoint '${checkpoint}'.`, 'checkpoint_not_found');
    }
    return files;
  };

  router.add('GET', '/v1/fine_tuning/jobs/:job/checkpoints/:checkpoint/files', async ({ res, params, owner }) => {
    const files = await checkpointFiles(owner, params.job, params.checkpoint);
    const data = files.map(({ object, name, bytes }) => ({ object, name, bytes }));
    sendJson(res, 200, { object: 'list', data, has_more: false, first_id: data[0]?.name ?? null, last_id: data[data.length - 1]?.name ?? null });
  });

  router.add('GET', '/v1/fine_tuning/jobs/:job/checkpoints/:checkpoint/files/:name', async ({ res, params, owner }) => {
    const files = await checkpointFiles(owner, params.job, params.checkpoint);
    // Only a name the runtime listed reaches the disk; the request's name is never joined into a path.
    const file = files.find((f) => f.name === params.name);
    if (!file) throw notFound(`Checkpoint '${params.checkpoint}' has no file '${params.name}'.`, 'file_not_found');
    await sendFile(res, file.path, file.name.endsWith('.json') ? 'application/json' : 'application/octet-stream', file.name);
  });
}
