// The embedded engine's side of the JSON-lines protocol (common/engineProtocol.ts): checking what the backend
// writes before trusting it, and writing what the engine answers, one JSON object a line on stdout.
import { LORA_TARGET_MODULES, LR_SCHEDULERS, TRAINING_TYPES, type Hyperparameters } from '../../../common/api';
import {
  ENGINE_PROTOCOL_VERSION,
  type ChatCancelMessage,
  type ChatRequestMessage,
  type EngineRequest,
  type ModelRef,
  type TrainMessage,
  type TrainSpec,
} from '../../../common/engineProtocol';
import { EngineError } from './errors';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(where: string, what: string): EngineError {
  return new EngineError('engine_error', `protocol: ${where} ${what}`);
}

function str(o: Json, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw bad(`${where}.${key}`, 'must be a string');
  return v;
}

function strOrNull(o: Json, key: string, where: string): string | null {
  const v = o[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') throw bad(`${where}.${key}`, 'must be a string or null');
  return v;
}

function num(o: Json, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${where}.${key}`, 'must be a finite number');
  return v;
}

function obj(o: Json, key: string, where: string): Json {
  const v = o[key];
  if (!isObject(v)) throw bad(`${where}.${key}`, 'must be an object');
  return v;
}

function modelRef(o: Json, where: string): ModelRef {
  const m = obj(o, 'model', where);
  return { id: str(m, 'id', `${where}.model`), path: str(m, 'path', `${where}.model`) };
}

function hyperparameters(o: Json, where: string): Hyperparameters {
  const h = obj(o, 'hyperparameters', where);
  const w = `${where}.hyperparameters`;
  const scheduler = str(h, 'lr_scheduler', w);
  if (!(LR_SCHEDULERS as readonly string[]).includes(scheduler)) throw bad(`${w}.lr_scheduler`, `must be one of ${LR_SCHEDULERS.join(', ')}`);
  // Jobs stored before full fine-tuning existed have no training_type: they trained LoRA adapters.
  const trainingType = h.training_type ?? 'lora';
  if (!(TRAINING_TYPES as readonly unknown[]).includes(trainingType)) throw bad(`${w}.training_type`, `must be one of ${TRAINING_TYPES.join(', ')}`);
  const targets = h.lora_target_modules;
  if (!Array.isArray(targets) || !targets.every((t) => (LORA_TARGET_MODULES as readonly unknown[]).includes(t))) {
    throw bad(`${w}.lora_target_modules`, `must be a list of ${LORA_TARGET_MODULES.join(', ')}`);
  }
  return {
    n_epochs: num(h, 'n_epochs', w),
    batch_size: num(h, 'batch_size', w),
    learning_rate: num(h, 'learning_rate', w),
    learning_rate_multiplier: typeof h.learning_rate_multiplier === 'number' ? h.learning_rate_multiplier : 1,
    max_seq_length: num(h, 'max_seq_length', w),
    warmup_ratio: num(h, 'warmup_ratio', w),
    lr_scheduler: scheduler as Hyperparameters['lr_scheduler'],
    training_type: trainingType as Hyperparameters['training_type'],
    lora_r: num(h, 'lora_r', w),
    lora_alpha: num(h, 'lora_alpha', w),
    lora_dropout: num(h, 'lora_dropout', w),
    lora_target_modules: targets as Hyperparameters['lora_target_modules'],
    checkpoints: num(h, 'checkpoints', w),
    eval_ratio: num(h, 'eval_ratio', w),
  };
}

function trainMessage(o: Json): TrainMessage {
  const s = obj(o, 'spec', 'train');
  const w = 'train.spec';
  const spec: TrainSpec = {
    job_id: str(s, 'job_id', w),
    model: modelRef(s, w),
    training_file: str(s, 'training_file', w),
    validation_file: strOrNull(s, 'validation_file', w),
    hyperparameters: hyperparameters(s, w),
    seed: num(s, 'seed', w),
    output_dir: str(s, 'output_dir', w),
    resume_from: strOrNull(s, 'resume_from', w),
    gpus: typeof s.gpus === 'number' ? s.gpus : 0,
  };
  return { type: 'train', protocol: ENGINE_PROTOCOL_VERSION, spec };
}

function chatMessage(o: Json): ChatRequestMessage {
  const id = str(o, 'id', 'chat');
  const w = `chat ${id}`;
  const messages = o.messages;
  if (!Array.isArray(messages)) throw bad(`${w}: messages`, 'must be a list');
  const checked = messages.map((m: unknown, i) => {
    if (!isObject(m)) throw bad(`${w}: messages[${i}]`, 'must be an object');
    const role = str(m, 'role', `messages[${i}]`);
    if (role !== 'system' && role !== 'user' && role !== 'assistant') throw bad(`${w}: messages[${i}].role`, 'must be system, user or assistant');
    return { role, content: str(m, 'content', `messages[${i}]`) } as const;
  });
  const p = obj(o, 'params', w);
  const stop = p.stop;
  if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string')) throw bad(`${w}: params.stop`, 'must be a list of strings');
  return {
    type: 'chat',
    id,
    model: modelRef(o, w),
    adapter: strOrNull(o, 'adapter', w),
    messages: checked,
    params: {
      temperature: num(p, 'temperature', 'params'),
      top_p: num(p, 'top_p', 'params'),
      top_k: num(p, 'top_k', 'params'),
      max_tokens: num(p, 'max_tokens', 'params'),
      repetition_penalty: num(p, 'repetition_penalty', 'params'),
      seed: num(p, 'seed', 'params'),
      stop: stop as string[],
    },
  };
}

/**
 * Parses one line the backend wrote.
 * @throws EngineError `engine_error` saying what is wrong and where (a `train` of another protocol version too)
 */
export function parseRequest(line: string): EngineRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw bad('line', `is not JSON: ${line.slice(0, 80)}`);
  }
  if (!isObject(value)) throw bad('line', 'is not a JSON object');
  switch (value.type) {
    case 'train':
      if (value.protocol !== ENGINE_PROTOCOL_VERSION) {
        throw bad('train.protocol', `is ${JSON.stringify(value.protocol)}; this engine speaks version ${ENGINE_PROTOCOL_VERSION}`);
      }
      return trainMessage(value);
    case 'chat':
      return chatMessage(value);
    case 'chat_cancel':
      return { type: 'chat_cancel', id: str(value, 'id', 'chat_cancel') } satisfies ChatCancelMessage;
    default:
      throw bad('type', `${JSON.stringify(value.type)} is not train, chat or chat_cancel`);
  }
}

/** The request id of a line, when it has one: a malformed `chat` still gets its `chat_error`. */
export function requestId(line: string): string | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return isObject(value) && typeof value.id === 'string' ? value.id : undefined;
  } catch {
    return undefined;
  }
}
