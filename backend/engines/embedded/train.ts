// One training job of the embedded engine: load the model and the data, then optimizer steps of accumulated
// sequences with metrics after each, and evenly spaced checkpoints with eval and a sample answer
// (ARCHITECTURE.md, "The training rules"; TRAINING.md). Resumes from a checkpoint as if never interrupted: the
// data order comes from the seed, and the checkpoint holds the adapter (or, under full fine-tuning, the whole
// model), the optimizer moments and the RNG.
import type { LoraTargetModule, MetricsData } from '../../../common/api';
import type { CheckpointMessage, EngineMessage, TrainSpec } from '../../../common/engineProtocol';
import {
  adapterConfig,
  checkpointPath,
  readCheckpoint,
  writeCheckpoint,
  type Checkpoint,
  type FullWeightsToWrite,
  type LoraWeights,
  type OptimizerState,
  type TrainerState,
} from './checkpoint';
import { loadDataset, promptIds, type Dataset, type EngineLog, type Example } from './data';
import { CancelledError, EngineError, oneLine, yieldToEventLoop } from './errors';
import { generate } from './generate';
import { AdamW, clipGradNorm } from './model/adamw';
import { ModelError, Qwen2Model, type LoraOptions, type Parameter } from './model/qwen2';
import { Rng } from './model/rng';
import { SafetensorsError } from './model/safetensors';
import { batchOf, epochOrder, learningRate, planRun } from './schedule';
import { ensureModelFolder } from './tinyModels';
import { TokenBytes, loadTokenizer, type ModelTokenizer } from './tokenizer';

/** Gradient norm clipping threshold (transformers' default max_grad_norm). */
const MAX_GRAD_NORM = 1;

/** What a job reports through and checks for cancellation. */
export interface TrainContext {
  send(message: EngineMessage): void;
  log: EngineLog;
  /** True once the backend asked the job to stop (stdin closed, SIGTERM). */
  cancelled(): boolean;
}

/**
 * Loads a model folder (making a tiny model's first), turning every failure into `model_unavailable`. The
 * weights come from `weightsFolder` when given (a full fine-tuning checkpoint), the tokenizer from the base.
 */
export async function loadModel(ref: TrainSpec['model'], weightsFolder: string = ref.path): Promise<{ model: Qwen2Model } & ModelTokenizer> {
  await ensureModelFolder(ref);
  const tokenizer = await loadTokenizer(ref.path);
  let model: Qwen2Model;
  try {
    model = await Qwen2Model.load(weightsFolder);
  } catch (e) {
    const what = weightsFolder === ref.path ? ref.id : `the checkpoint ${weightsFolder} of ${ref.id}`;
    if (ModelError.is(e) || SafetensorsError.is(e)) throw new EngineError('model_unavailable', `cannot load ${what}: ${oneLine(e)}`);
    throw e;
  }
  if (tokenizer.tokenizer.vocabSize > model.config.vocab_size) {
    throw new EngineError(
      'model_unavailable',
      `${ref.path}: the tokenizer has ${tokenizer.tokenizer.vocabSize} ids but the model only ${model.config.vocab_size} embeddings`,
    );
  }
  return { model, ...tokenizer };
}

function checkHyperparameters(spec: TrainSpec): void {
  const h = spec.hyperparameters;
  const full = h.training_type === 'full';
  const positive: [string, number][] = [
    ['n_epochs', h.n_epochs],
    ['batch_size', h.batch_size],
    ['max_seq_length', h.max_seq_length],
    ...(full ? [] : [['lora_r', h.lora_r] as [string, number]]),
    ['checkpoints', h.checkpoints],
  ];
  for (const [name, value] of positive) {
    if (!Number.isInteger(value) || value < 1) {
      throw new EngineError('engine_error', `hyperparameters.${name} must be a positive integer for the embedded engine, got ${value}`);
    }
  }
  if (!(h.learning_rate > 0) || !Number.isFinite(h.learning_rate)) {
    throw new EngineError('engine_error', `hyperparameters.learning_rate must be a positive number, got ${h.learning_rate}`);
  }
  if (!full && h.lora_target_modules.length === 0) throw new EngineError('engine_error', 'hyperparameters.lora_target_modules is empty');
}

/** The LoRA settings of a job. */
function loraOptions(spec: TrainSpec): LoraOptions & { targetModules: LoraTargetModule[] } {
  const h = spec.hyperparameters;
  return { r: h.lora_r, alpha: h.lora_alpha, dropout: h.lora_dropout, targetModules: [...h.lora_target_modules] };
}

interface Sums {
  lossSum: number;
  tokens: number;
  correct: number;
}

/** Runs a job to its end: `started`, `metrics` per step, `checkpoint`s, then `done`. Throws EngineError or CancelledError. */
export async function runTraining(spec: TrainSpec, ctx: TrainContext): Promise<void> {
  const jobStart = performance.now();
  checkHyperparameters(spec);
  const h = spec.hyperparameters;
  const full = h.training_type === 'full';
  // A full run resumes from the weights it trained, which its checkpoint holds as a model folder.
  const resumed: Checkpoint | null = spec.resume_from === null ? null : await readCheckpoint(spec.resume_from);
  if (resumed && (resumed.weights.kind === 'full') !== full) {
    throw new EngineError(
      'engine_error',
      `cannot resume from ${spec.resume_from}: it holds ${resumed.weights.kind === 'full' ? 'a whole model (full fine-tuning)' : 'a LoRA adapter'}, this job trains ${full ? 'every weight' : 'a LoRA adapter'}`,
    );
  }
  const { model, tokenizer, special } = await loadModel(spec.model, resumed?.weights.kind === 'full' ? resumed.weights.folder : spec.model.path);
  const maxSeqLength = Math.min(h.max_seq_length, model.config.max_position_embeddings);
  if (maxSeqLength < h.max_seq_length) {
    ctx.log('warn', `max_seq_length ${h.max_seq_length} is beyond the model's context; using ${maxSeqLength}`);
  }
  const data = await loadDataset(
    {
      trainingFile: spec.training_file,
      validationFile: spec.validation_file,
      evalRatio: h.eval_ratio,
      seed: spec.seed,
      maxSeqLength,
      tokenizer,
      special,
    },
    ctx.log,
  );
  const plan = planRun(data.train.length, h.batch_size, h.n_epochs, h.warmup_ratio, h.checkpoints);
  const lora = loraOptions(spec);

  if (resumed) {
    const s = resumed.state;
    if (s.total_steps !== plan.totalSteps || s.train_examples !== data.train.length || s.seed !== spec.seed) {
      throw new EngineError(
        'engine_error',
        `cannot resume from ${spec.resume_from}: it was made for ${s.train_examples} training examples, ${s.total_steps} steps and seed ${s.seed}; this job has ${data.train.length}, ${plan.totalSteps} and ${spec.seed}`,
      );
    }
  }
  if (full) {
    model.setFullFineTuning(true);
  } else if (resumed?.weights.kind === 'lora') {
    try {
      model.loadLora(resumed.weights.adapter, lora);
    } catch (e) {
      throw new EngineError('engine_error', `cannot resume from ${spec.resume_from}: ${oneLine(e)}`);
    }
  } else {
    model.addLora(lora, spec.seed);
  }
  const params = model.parameters();
  // No weight decay on LoRA weights (peft/transformers practice: B starts at zero and decays towards the base).
  // Full fine-tuning keeps the same optimizer, weight decay 0 too: on the tiny models' short runs decay only
  // pulls the weights towards zero, and one rule for both kinds keeps resumed runs simple.
  const optimizer = new AdamW(params, { weightDecay: 0 });
  if (resumed) optimizer.setState(optimizerFrom(resumed.optimizer, params, spec.resume_from ?? ''));
  const rng = resumed ? Rng.fromState(resumed.state.rng) : new Rng(spec.seed);
  const startStep = resumed ? resumed.state.step : 0;
  let trainedTokens = resumed ? resumed.state.trained_tokens : 0;

  const trainable = params.reduce((n, p) => n + p.data.length, 0);
  const what = full ? 'full fine-tuning of every weight' : `LoRA r=${lora.r} alpha=${lora.alpha} on ${lora.targetModules.join(', ')}`;
  ctx.log('info', `${spec.model.id}: ${what} (${trainable} trainable parameters); ${plan.totalSteps} steps`, {
    trainable_parameters: trainable,
  });
  ctx.send({
    type: 'started',
    total_steps: plan.totalSteps,
    train_examples: data.train.length,
    eval_examples: data.eval.length,
    tokens_per_epoch: data.tokensPerEpoch,
    trained_tokens_per_epoch: data.trainedTokensPerEpoch,
    truncated_examples: data.truncated,
    resumed_from_step: resumed ? startStep : null,
  });

  let orderEpoch = -1;
  let order: number[] = [];
  const orderOf = (epoch: number): number[] => {
    if (epoch !== orderEpoch) {
      const stored = resumed?.state.data_order;
      const storedEpoch = resumed ? Math.floor((resumed.state.step - 1) / plan.stepsPerEpoch) : -1;
      order = stored && epoch === storedEpoch && stored.length === data.train.length ? stored : epochOrder(data.train.length, spec.seed, epoch);
      orderEpoch = epoch;
    }
    return order;
  };

  let finalCheckpoint = '';
  for (let step = startStep + 1; step <= plan.totalSteps; step++) {
    const stepStart = performance.now();
    const epochIndex = Math.floor((step - 1) / plan.stepsPerEpoch);
    const batch = batchOf(step, plan, orderOf(epochIndex), h.batch_size).map((i) => data.train[i]);
    const batchTrained = batch.reduce((n, e) => n + e.trainedTokens, 0);
    model.zeroGrad();
    const sums: Sums = { lossSum: 0, tokens: 0, correct: 0 };
    let seqTokens = 0;
    for (const example of batch) {
      // The loss of the batch is the mean over all its trained tokens, not a mean of per-sequence means.
      add(sums, model.trainStep(example.ids, example.labels, 1 / batchTrained, rng));
      seqTokens += example.ids.length;
      await yieldOrCancel(ctx);
    }
    const trainLoss = sums.lossSum / sums.tokens;
    if (!Number.isFinite(trainLoss)) throw new EngineError('nan_loss', `the training loss is ${trainLoss} at step ${step}: lower the learning rate`);
    const gradNorm = clipGradNorm(params, MAX_GRAD_NORM);
    if (!Number.isFinite(gradNorm)) throw new EngineError('nan_loss', `the gradient norm is ${gradNorm} at step ${step}: lower the learning rate`);
    const lr = learningRate(step, plan, h.learning_rate, h.lr_scheduler);
    optimizer.step(lr);
    trainedTokens += seqTokens;

    const isCheckpoint = plan.checkpointSteps.includes(step);
    const metrics: MetricsData = {
      step,
      total_steps: plan.totalSteps,
      epoch: step / plan.stepsPerEpoch,
      train_loss: trainLoss,
      train_mean_token_accuracy: sums.correct / sums.tokens,
      learning_rate: lr,
      grad_norm: gradNorm,
      tokens_per_second: seqTokens / Math.max(1e-6, (performance.now() - stepStart) / 1000),
      elapsed: (performance.now() - jobStart) / 1000,
    };
    let valid: Sums | null = null;
    if (isCheckpoint && data.eval.length > 0) {
      valid = await evaluate(model, data.eval, ctx);
      metrics.valid_loss = valid.lossSum / valid.tokens;
      metrics.valid_mean_token_accuracy = valid.correct / valid.tokens;
    }
    ctx.send({ type: 'metrics', data: metrics, trained_tokens: trainedTokens });
    if (!isCheckpoint) continue;

    const path = checkpointPath(spec.output_dir, step);
    const state: TrainerState = {
      format: 'finetune-studio-embedded',
      version: 1,
      base_model: spec.model.id,
      step,
      total_steps: plan.totalSteps,
      epoch: metrics.epoch,
      seed: spec.seed,
      rng: rng.getState(),
      trained_tokens: trainedTokens,
      train_examples: data.train.length,
      data_order: orderOf(epochIndex),
      hyperparameters: h,
      train_loss: metrics.train_loss,
      train_mean_token_accuracy: metrics.train_mean_token_accuracy,
      valid_loss: metrics.valid_loss ?? null,
      valid_mean_token_accuracy: metrics.valid_mean_token_accuracy ?? null,
    };
    const adam = optimizer.getState();
    const moments = new Map(params.map((p, i) => [p.name, { m: adam.m[i], v: adam.v[i] }]));
    const weights: LoraWeights | FullWeightsToWrite = full
      ? { kind: 'full', model, baseFolder: spec.model.path }
      : { kind: 'lora', adapterConfig: adapterConfig(spec.model.id, lora), adapter: model.loraTensors() };
    await writeCheckpoint(path, {
      weights,
      state,
      optimizer: { step: adam.step, moments },
    });
    const sample = await sampleAnswer(model, { tokenizer, special }, data, ctx);
    ctx.send({
      type: 'checkpoint',
      step,
      path,
      train_loss: metrics.train_loss,
      train_mean_token_accuracy: metrics.train_mean_token_accuracy,
      valid_loss: metrics.valid_loss ?? null,
      valid_mean_token_accuracy: metrics.valid_mean_token_accuracy ?? null,
      sample,
    });
    finalCheckpoint = path;
  }
  if (finalCheckpoint === '') finalCheckpoint = checkpointPath(spec.output_dir, plan.totalSteps);
  ctx.send({ type: 'done', trained_tokens: trainedTokens, final_checkpoint: finalCheckpoint });
}

/** Lets stdin closing and signals be seen between sequences; throws when the job was cancelled. */
async function yieldOrCancel(ctx: TrainContext): Promise<void> {
  await yieldToEventLoop();
  if (ctx.cancelled()) throw new CancelledError('training cancelled');
}

function add(into: Sums, s: Sums): void {
  into.lossSum += s.lossSum;
  into.tokens += s.tokens;
  into.correct += s.correct;
}

/** Loss and accuracy over the held-out examples, normalised over all their trained tokens. */
async function evaluate(model: Qwen2Model, examples: readonly Example[], ctx: TrainContext): Promise<Sums> {
  const sums: Sums = { lossSum: 0, tokens: 0, correct: 0 };
  for (const e of examples) {
    add(sums, model.evaluate(e.ids, e.labels));
    await yieldOrCancel(ctx);
  }
  return sums;
}

/** This checkpoint's greedy answer to the run's sample conversation (at most about twice the reference's length). */
async function sampleAnswer(model: Qwen2Model, tok: ModelTokenizer, data: Dataset, ctx: TrainContext): Promise<CheckpointMessage['sample']> {
  if (!data.sample) return null;
  const { tokenizer, special } = tok;
  const prompt = promptIds(tokenizer, special, data.sample.messages);
  const referenceTokens = tokenizer.count(data.sample.reference) + 1;
  try {
    const answer = await generate({
      model,
      tokenizer,
      bytes: new TokenBytes(tokenizer),
      prompt,
      stopIds: [special.imEnd, ...(special.endOfText === undefined ? [] : [special.endOfText])],
      stop: [],
      maxTokens: 2 * referenceTokens + 8,
      sampling: { temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1 },
      seed: 0,
      cancelled: () => ctx.cancelled(),
    });
    return { messages: data.sample.messages, reference: data.sample.reference, answer: answer.text };
  } catch (e) {
    if (!EngineError.is(e)) throw e;
    ctx.log('warn', `no sample answer at this checkpoint: ${e.message}`);
    return { messages: data.sample.messages, reference: data.sample.reference, answer: '' };
  }
}

/** The optimizer state of a checkpoint in the order of the model's parameters, checked against their sizes. */
function optimizerFrom(o: OptimizerState, params: readonly Parameter[], path: string): { step: number; m: Float32Array[]; v: Float32Array[] } {
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (const p of params) {
    const moments = o.moments.get(p.name);
    if (!moments || moments.m.length !== p.data.length || moments.v.length !== p.data.length) {
      throw new EngineError('engine_error', `cannot resume from ${path}: optimizer.safetensors has no moments of the right size for ${p.name}`);
    }
    m.push(moments.m);
    v.push(moments.v);
  }
  return { step: o.step, m, v };
}
