// `/v1/adapters` (ours): save a checkpoint's adapter under a name (the backend keeps its own copy, so chat can
// serve it after the job is gone), list, get and delete them. Owner-scoped like files and jobs.
import type { DeletedObject } from '../../../common/api';
import { ADAPTER_NAME_MAX, ADAPTER_NAME_PATTERN, checkSaveAdapterRequest } from '../../../common/apiSchemas';
import type { ModelCatalogue } from '../../models';
import type { JobRuntime } from '../../runtime';
import { AdapterError, type AdapterStore } from '../../store/adapters';
import { readJson } from '../body';
import { HttpError, invalid, notFound, sendJson } from '../errors';
import { afterParam, limitParam, sendList } from '../query';
import type { Router } from '../router';

/** Adapters per page: few users keep more than a few dozen, so one page usually holds them all. */
export const ADAPTERS_LIMIT = { fallback: 100, max: 1000 };

/** What the adapter routes use. */
export interface AdapterRouteDeps {
  adapters: AdapterStore;
  models: ModelCatalogue;
  runtime: JobRuntime;
}

function noSuchAdapter(id: string): HttpError {
  return notFound(`No adapter with id '${id}'.`, 'adapter_not_found');
}

/** Adds the adapter routes. */
export function adapterRoutes(router: Router, deps: AdapterRouteDeps): void {
  router.add('POST', '/v1/adapters', async ({ req, res, owner }) => {
    const checked = checkSaveAdapterRequest(await readJson(req, res));
    if (!checked.ok) throw invalid(checked.error.message, checked.error.param, checked.error.code);
    const request = checked.value;
    if (!ADAPTER_NAME_PATTERN.test(request.name)) {
      throw invalid(
        `Invalid value for 'name': use 1 to ${ADAPTER_NAME_MAX} letters, digits, '_', '.' or '-' (not only dots), got ${JSON.stringify(request.name.slice(0, 200))}.`,
        'name',
      );
    }
    // Chat looks base models up first, so an adapter named like one could never be reached by its name.
    if (await deps.models.find(request.name)) throw invalid(`Invalid value for 'name': '${request.name}' is a base model's id; choose another name.`, 'name');
    const source = await deps.runtime.fineTunedSource(owner, request.model);
    if (!source) {
      throw notFound(`The model '${request.model}' does not exist; give a checkpoint's fine_tuned_model_checkpoint or a job's fine_tuned_model.`, 'model_not_found', 'model');
    }
    try {
      const adapter = await deps.adapters.save({
        owner,
        name: request.name,
        location: request.location ?? null,
        overwrite: request.overwrite === true,
        sourceModel: request.model,
        source,
      });
      sendJson(res, 201, adapter);
    } catch (error) {
      if (AdapterError.is(error) && error.reason === 'exists') throw new HttpError('conflict_error', error.message, 'adapter_exists', 'name');
      if (AdapterError.is(error)) throw notFound(error.message, 'model_not_found', 'model');
      throw error;
    }
  });

  router.add('GET', '/v1/adapters', ({ res, url, owner }) => {
    const after = afterParam(url);
    const page = deps.adapters.list(owner, after, limitParam(url, ADAPTERS_LIMIT.fallback, ADAPTERS_LIMIT.max));
    if (!page) throw invalid(`Invalid value for 'after': no adapter with id '${after ?? ''}'.`, 'after');
    sendList(res, page);
  });

  router.add('GET', '/v1/adapters/:adapter', ({ res, params, owner }) => {
    const adapter = deps.adapters.get(owner, params.adapter);
    if (!adapter) throw noSuchAdapter(params.adapter);
    sendJson(res, 200, adapter);
  });

  router.add('DELETE', '/v1/adapters/:adapter', async ({ res, params, owner }) => {
    const id = params.adapter;
    if (!(await deps.adapters.delete(owner, id))) throw noSuchAdapter(id);
    const deleted: DeletedObject = { id, object: 'adapter', deleted: true };
    sendJson(res, 200, deleted);
  });
}
