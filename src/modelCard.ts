// What "Save to Repository" writes beside a checkpoint's files: the folder's name, a model card (README.md) and
// training_args.json, made from the job, the checkpoint and the training file as the backend reports them. Pure
// (no vscode, no I/O) so that plain-Node unit tests check the text. The card is in English on purpose: it travels
// with the adapter (Hugging Face Hub, colleagues), not with this editor's language.
import type { CheckpointFile, FileObject, FineTuningJob, FineTuningJobCheckpoint, Hyperparameters } from '../common/api';

/** Everything a model card is made from. */
export interface ModelCardInput {
  job: FineTuningJob;
  checkpoint: FineTuningJobCheckpoint;
  /** The training file as the backend lists it; undefined when it was deleted since (the card says so). */
  trainingFile: FileObject | undefined;
  /** The checkpoint's files, as downloaded. */
  files: readonly CheckpointFile[];
}

/** Above this LoRA rank vLLM needs `--max-lora-rank` (its default is 16). */
const VLLM_DEFAULT_MAX_LORA_RANK = 16;

/** The values vLLM accepts for `--max-lora-rank`; a rank between two takes the next one up. */
const VLLM_LORA_RANKS = [8, 16, 32, 64, 128, 256, 320, 512] as const;

/** The `--max-lora-rank` vLLM needs for rank `r` (the rank itself when it is beyond vLLM's list). */
export function vllmMaxLoraRank(r: number): number {
  return VLLM_LORA_RANKS.find((rank) => rank >= r) ?? r;
}

/** The run's name for folders: the job's suffix, else its id. */
export function runName(job: FineTuningJob): string {
  const suffix = job.suffix?.trim();
  return suffix !== undefined && suffix !== '' ? suffix : job.id;
}

/**
 * The folder a checkpoint is saved to inside the repository: `<run-name>-step<N>`. Characters that some file
 * systems refuse (or that would leave the repository, like `/` and `..`) become `-`.
 */
export function adapterFolderName(job: FineTuningJob, checkpoint: FineTuningJobCheckpoint): string {
  const safe = runName(job)
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '')
    .replace(/-+$/, '');
  return `${safe === '' ? job.id : safe}-step${checkpoint.step_number}`;
}

/** Whether the checkpoint is a whole model (training_type `full`) rather than a LoRA adapter. */
export function isFullModel(job: FineTuningJob): boolean {
  return job.hyperparameters.training_type === 'full';
}

/** training_args.json: the values the checkpoint was trained with, and where it stands. */
export interface TrainingArgs {
  base_model: string;
  job_id: string;
  checkpoint_id: string;
  fine_tuned_model_checkpoint: string;
  run_name: string;
  training_file: { id: string; filename: string | null; examples: number | null };
  validation_file: string | null;
  seed: number;
  step: number;
  total_steps: number | null;
  trained_tokens: number | null;
  engine: string;
  hyperparameters: Hyperparameters;
  metrics: FineTuningJobCheckpoint['metrics'];
}

/** The object written as training_args.json. */
export function trainingArgs(input: ModelCardInput): TrainingArgs {
  const { job, checkpoint, trainingFile } = input;
  return {
    base_model: job.model,
    job_id: job.id,
    checkpoint_id: checkpoint.id,
    fine_tuned_model_checkpoint: checkpoint.fine_tuned_model_checkpoint,
    run_name: runName(job),
    training_file: { id: job.training_file, filename: trainingFile?.filename ?? null, examples: trainingFile?.examples ?? null },
    validation_file: job.validation_file,
    seed: job.seed,
    step: checkpoint.step_number,
    total_steps: job.progress?.total_steps ?? null,
    trained_tokens: job.trained_tokens,
    engine: job.engine,
    hyperparameters: job.hyperparameters,
    metrics: checkpoint.metrics,
  };
}

/** A value as a table cell: lists joined, pipes escaped so that they do not split the cell. */
function cell(value: unknown): string {
  const text = Array.isArray(value) ? value.join(', ') : typeof value === 'number' ? formatNumber(value) : String(value);
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Numbers as written by people: integers as they are, others to 6 significant digits (no 0.30000000000000004). */
function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
}

/**
 * A fenced block around text that may itself hold backticks: the fence is one backtick longer than the longest
 * run inside (CommonMark's rule), so a sample with code in it cannot end the block early.
 */
function fenced(text: string, info = ''): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${info}\n${text}\n${fence}`;
}

/** A string as a Python literal (JSON's escapes are valid Python). */
function py(text: string): string {
  return JSON.stringify(text);
}

/** A shell word: single-quoted unless it is plain. */
function sh(text: string): string {
  return /^[A-Za-z0-9._\/:=@-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** README.md: the model card. `folder` is the saved folder's name (the paths in the examples are relative to it). */
export function modelCard(input: ModelCardInput, folder: string): string {
  const { job, checkpoint, trainingFile, files } = input;
  const hp = job.hyperparameters;
  const full = isFullModel(job);
  const name = runName(job);
  const lines: string[] = [];
  const push = (...more: string[]): void => {
    lines.push(...more);
  };

  // Front matter the Hugging Face Hub reads; peft's cards carry the same keys.
  push('---', `base_model: ${job.model}`);
  if (!full) push('library_name: peft');
  push('tags:', `- ${full ? 'full-fine-tune' : 'lora'}`, '- finetune-studio', '---', '');

  push(`# ${name} (step ${checkpoint.step_number})`, '');
  push(
    full
      ? `A full fine-tune of \`${job.model}\`: every weight was trained. This folder is a complete model.`
      : `A LoRA adapter for \`${job.model}\`, trained with Finetune Studio. This folder holds the adapter only; load it on top of the base model.`,
    '',
  );

  push('## Training data', '');
  if (trainingFile) {
    push(`- Dataset: \`${trainingFile.filename}\` (${trainingFile.examples} examples, ${trainingFile.bytes} bytes; file id \`${trainingFile.id}\`)`);
  } else {
    push(`- Dataset: file \`${job.training_file}\` (no longer on the backend: its name and size are unknown)`);
  }
  push(`- Validation file: ${job.validation_file === null ? (hp.eval_ratio > 0 ? `none (${formatNumber(hp.eval_ratio * 100)}% of the training file held out)` : 'none') : `\`${job.validation_file}\``}`);
  push('');

  push('## Training', '');
  push('| Setting | Value |', '| --- | --- |');
  push(`| base model | ${cell(job.model)} |`);
  push(`| job | ${cell(job.id)} |`);
  push(`| checkpoint | ${cell(checkpoint.id)} |`);
  push(`| model name on the backend | ${cell(checkpoint.fine_tuned_model_checkpoint)} |`);
  push(`| step | ${checkpoint.step_number}${job.progress ? ` of ${job.progress.total_steps}` : ''} |`);
  push(`| seed | ${job.seed} |`);
  push(`| engine | ${cell(job.engine)} |`);
  if (job.trained_tokens !== null) push(`| trained tokens | ${job.trained_tokens} |`);
  for (const [key, value] of Object.entries(hp)) push(`| ${key} | ${cell(value)} |`);
  push('');

  push('## Metrics at this checkpoint', '');
  push('| Metric | Value |', '| --- | --- |');
  for (const [key, value] of Object.entries(checkpoint.metrics)) {
    if (typeof value === 'number') push(`| ${key} | ${formatNumber(value)} |`);
  }
  push('');

  if (checkpoint.sample) {
    push('## Sample', '', 'The same example is answered at every checkpoint (greedy decoding).', '');
    push('Prompt:', '');
    push(fenced(checkpoint.sample.messages.map((m) => `${m.role}: ${m.content}`).join('\n'), 'text'), '');
    push('Reference answer (from the dataset):', '', fenced(checkpoint.sample.reference, 'text'), '');
    push('This checkpoint\'s answer:', '', fenced(checkpoint.sample.answer, 'text'), '');
  }

  push('## Files', '');
  for (const file of files) push(`- \`${file.name}\` (${file.bytes} bytes)`);
  push('- `training_args.json`: the settings and metrics above, as JSON', '');

  push('## Usage', '');
  if (full) {
    push(
      'With transformers (the folder is a whole model):',
      '',
      fenced(
        [
          'from transformers import AutoModelForCausalLM, AutoTokenizer',
          '',
          `path = ${py(`./${folder}`)}`,
          'model = AutoModelForCausalLM.from_pretrained(path, torch_dtype="auto")',
          'tokenizer = AutoTokenizer.from_pretrained(path)',
        ].join('\n'),
        'python',
      ),
      '',
      'Serve it with vLLM:',
      '',
      fenced(`vllm serve ${sh(`./${folder}`)}`, 'sh'),
      '',
    );
  } else {
    push(
      'With transformers + peft:',
      '',
      fenced(
        [
          'from peft import PeftModel',
          'from transformers import AutoModelForCausalLM, AutoTokenizer',
          '',
          `base = ${py(job.model)}`,
          'model = AutoModelForCausalLM.from_pretrained(base, torch_dtype="auto")',
          'tokenizer = AutoTokenizer.from_pretrained(base)',
          `model = PeftModel.from_pretrained(model, ${py(`./${folder}`)})`,
          '# Optional: fold the adapter into the weights for faster inference.',
          '# model = model.merge_and_unload()',
        ].join('\n'),
        'python',
      ),
      '',
      'Serve it with vLLM (OpenAI-compatible API; ask for the model by the adapter\'s name):',
      '',
      fenced(
        [
          `vllm serve ${sh(job.model)} --enable-lora`,
          `  --lora-modules ${sh(`${name.replace(/[^A-Za-z0-9._-]+/g, '-')}=./${folder}`)}`,
          ...(hp.lora_r > VLLM_DEFAULT_MAX_LORA_RANK ? [`  --max-lora-rank ${vllmMaxLoraRank(hp.lora_r)}`] : []),
        ].join(' \\\n'),
        'sh',
      ),
      '',
    );
  }
  return `${lines.join('\n').trimEnd()}\n`;
}
