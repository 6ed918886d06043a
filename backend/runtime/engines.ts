// The engine registry: which engines this backend has, whether they can run, and how to start one. An engine
// is a program that speaks common/engineProtocol.ts on stdio; the backend starts one process per job (`train`)
// and one long-lived chat process per engine (`serve`).
import { existsSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import type { EngineInfo } from '../../common/api';
import { checkTorchEngine, torchEngineDir } from '../engines/torch/check';

/** How to start an engine process. */
export interface EngineCommand {
  file: string;
  args: string[];
  cwd: string;
}

/** One engine. */
export interface Engine {
  info: EngineInfo;
  /** The command for a mode, or undefined when the engine is not available (see `info.reason`). */
  command(mode: 'train' | 'serve'): EngineCommand | undefined;
  /**
   * Resolves once `info` says whether the engine can run (the torch engine asks Python once, on first need, so
   * that a backend starts without waiting for torch to import). Absent: `info` is known from the start.
   */
  ready?(): Promise<void>;
}

/** Engine scripts to use instead of the built-in ones, by engine id (tests point `embedded` at fault injectors). */
export type EngineScripts = Partial<Record<string, string>>;

/** Environment variable naming another script for the embedded engine (same effect as `engineScripts.embedded`). */
export const EMBEDDED_ENGINE_ENV = 'FINETUNE_ENGINE_EMBEDDED';

/** The repository root when running from sources (this file is backend/runtime/engines.ts). */
const REPO_ROOT = resolve(__dirname, '..', '..');

/**
 * Where the embedded engine is: next to the running bundle when the backend runs from dist/ (the bundle's
 * `__dirname` is dist/), else its TypeScript entry point, run through tsx.
 */
function embeddedScript(): string {
  if (basename(__dirname) === 'dist') return join(__dirname, 'engine-embedded.js');
  return join(REPO_ROOT, 'backend', 'engines', 'embedded', 'main.ts');
}

function scriptCommand(script: string, mode: 'train' | 'serve'): EngineCommand {
  // TypeScript sources need the tsx loader; `--import tsx` resolves from the working folder, so run there.
  const typescript = ['.ts', '.mts', '.cts'].includes(extname(script));
  return {
    file: process.execPath,
    args: [...(typescript ? ['--import', 'tsx'] : []), script, mode],
    cwd: typescript ? REPO_ROOT : process.cwd(),
  };
}

/**
 * How to start the torch engine in a mode. It goes through the engine's launcher (finetune_torch/hub.py), which
 * sets the engine's network rules in its own environment before transformers or huggingface_hub is imported:
 * offline (HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1, whatever the backend's environment says) unless downloads
 * are allowed, then FINETUNE_TORCH_ALLOW_DOWNLOAD=1 and the hub reachable. The launcher, not the spawn, sets
 * them so that every process the engine starts (torchrun's workers) inherits the same rules.
 */
export function torchCommand(python: string, mode: string, allowDownloads: boolean): EngineCommand {
  return { file: python, args: ['-m', 'finetune_torch.hub', allowDownloads ? '--allow-downloads' : '--offline', mode], cwd: torchEngineDir() };
}

/**
 * The torch engine (Python: backend/engines/torch/finetune_torch), run with `python`. Whether it can run is what
 * its own `check` says (torch, transformers, peft, safetensors importable, an NVIDIA GPU), asked once.
 */
function torchEngine(python: string, allowDownloads: boolean): Engine {
  let checked: Promise<void> | undefined;
  const engine: Engine = {
    info: { id: 'torch', available: false, resumable: true, reason: 'not checked yet', downloads_allowed: allowDownloads },
    command: (mode) => (engine.info.available ? torchCommand(python, mode, allowDownloads) : undefined),
    ready() {
      checked ??= checkTorchEngine(python).then((result) => {
        engine.info = { ...result.info, downloads_allowed: allowDownloads };
      });
      return checked;
    },
  };
  return engine;
}

/**
 * The engines of this backend: `embedded` (TypeScript, CPU) and `torch` (Python, NVIDIA GPUs). `allowDownloads`
 * is `--allow-downloads`.
 */
export function engineRegistry(scripts: EngineScripts = {}, python = 'python3', allowDownloads = false): Map<string, Engine> {
  const script = scripts.embedded ?? process.env[EMBEDDED_ENGINE_ENV] ?? embeddedScript();
  const found = existsSync(script);
  const embedded: Engine = {
    info: found
      ? { id: 'embedded', available: true, resumable: true }
      : { id: 'embedded', available: false, resumable: true, reason: `the embedded engine is not built (${script} is missing; run npm run build)` },
    command: (mode) => (found ? scriptCommand(script, mode) : undefined),
  };
  // Tests may stand a script in for the torch engine (a fault injector speaking the protocol).
  const torchScript = scripts.torch;
  const torch: Engine =
    torchScript !== undefined && existsSync(torchScript)
      ? { info: { id: 'torch', available: true, resumable: true, downloads_allowed: allowDownloads }, command: (mode) => scriptCommand(torchScript, mode) }
      : torchEngine(python, allowDownloads);
  return new Map([
    ['embedded', embedded],
    ['torch', torch],
  ]);
}
