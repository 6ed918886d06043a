// `/v1/models` (base models, the owner's fine-tuned ones and saved adapters), `/v1/system` and the public `/healthz`.
import type { ModelObject, SystemInfo } from '../../../common/api';
import type { ModelCatalogue } from '../../models';
import type { JobRuntime } from '../../runtime';
import type { AdapterStore } from '../../store/adapters';
import { notFound, sendJson } from '../errors';
import type { Router } from '../router';

/** What the model and system routes use. */
export interface ModelRouteDeps {
  models: ModelCatalogue;
  runtime: JobRuntime;
  adapters: AdapterStore;
  version: string;
}

/** Adds the model, system and health routes. */
export function modelRoutes(router: Router, deps: ModelRouteDeps): void {
  const base = async (): Promise<ModelObject[]> =>
    (await deps.models.list()).map((m) => {
      const rate = deps.runtime.measuredThroughput?.(m.engine, m.object.id);
      return rate === undefined ? m.object : { ...m.object, measured_tokens_per_second: rate };
    });
  const all = async (owner: string): Promise<ModelObject[]> => [...(await base()), ...deps.runtime.fineTunedModels(owner), ...deps.adapters.models(owner)];

  router.add('GET', '/v1/models', async ({ res, owner }) => {
    const data = await all(owner);
    sendJson(res, 200, { object: 'list', data, has_more: false, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null });
  });

  // Model ids may hold slashes (`Qwen/Qwen2.5-0.5B-Instruct`): the rest of the path is the id.
  router.add('GET', '/v1/models/*model', async ({ res, params, owner }) => {
    const model = (await all(owner)).find((m) => m.id === params.model);
    if (!model) throw notFound(`The model '${params.model}' does not exist.`, 'model_not_found', 'model');
    sendJson(res, 200, model);
  });

  router.add('GET', '/v1/system', async ({ res }) => {
    await deps.runtime.enginesReady?.();
    const system: SystemInfo = { object: 'system', version: deps.version, ...deps.runtime.system() };
    sendJson(res, 200, system);
  });

  router.add('GET', '/healthz', ({ res }) => sendJson(res, 200, { status: 'ok' }), true);
}
