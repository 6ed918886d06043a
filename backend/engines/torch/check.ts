// Whether the torch engine can run on this machine: the backend asks the engine itself once at start
// (`python -m finetune_torch check` through its offline launcher, with this folder on PYTHONPATH), which imports torch, transformers, peft and
// safetensors and looks for an NVIDIA GPU. What it answers becomes the engine's entry in `/v1/system` — with the
// reason when it cannot run — and decides whether Qwen2.5 models are offered for training.
import { spawn } from 'node:child_process';
import { basename, join, resolve } from 'node:path';
import type { EngineInfo, GpuInfo } from '../../../common/api';

/** The folder that holds the `finetune_torch` package: beside the bundle's folder, or this source folder. */
export function torchEngineDir(): string {
  // dist/backend.js → <root>/backend/engines/torch; backend/engines/torch/check.ts (tsx) → here.
  if (basename(__dirname) === 'dist') return join(__dirname, '..', 'backend', 'engines', 'torch');
  return resolve(__dirname);
}

/** What `check` reported. */
export interface TorchCheck {
  info: EngineInfo;
  gpus: GpuInfo[];
}

/** How long the imports may take (torch and transformers take seconds on a cold disk). */
const CHECK_TIMEOUT_MS = 120_000;

/** Runs the engine's `check` with `python`; never rejects (a failure is a reason). */
export function checkTorchEngine(python: string, timeoutMs = CHECK_TIMEOUT_MS): Promise<TorchCheck> {
  const unavailable = (reason: string): TorchCheck => ({ info: { id: 'torch', available: false, resumable: true, reason }, gpus: [] });
  return new Promise((done) => {
    let stdout = '';
    let stderr = '';
    // Through the launcher, offline: the check imports transformers as training does, and never needs the network.
    const child = spawn(python, ['-m', 'finetune_torch.hub', '--offline', 'check'], {
      env: { ...process.env, PYTHONPATH: [torchEngineDir(), process.env.PYTHONPATH].filter(Boolean).join(':') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done(unavailable(`\`${python} -m finetune_torch check\` did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (error) => {
      clearTimeout(timer);
      done(unavailable(`cannot run ${python}: ${error.message} (--python names the Python with torch, transformers and peft; in VS Code the setting finetune.localBackend.python)`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        done(unavailable(`\`${python} -m finetune_torch check\` exited with ${code}: ${stderr.trim().split('\n').pop() ?? ''}`));
        return;
      }
      try {
        const report = JSON.parse(stdout) as { available?: unknown; reason?: unknown; gpus?: unknown };
        const gpus = Array.isArray(report.gpus)
          ? report.gpus.filter((g): g is GpuInfo => typeof g === 'object' && g !== null && typeof (g as GpuInfo).name === 'string' && typeof (g as GpuInfo).memory_total === 'number')
          : [];
        if (report.available === true) done({ info: { id: 'torch', available: true, resumable: true }, gpus });
        else done(unavailable(typeof report.reason === 'string' ? report.reason : 'the engine says it cannot run here'));
      } catch {
        done(unavailable(`\`${python} -m finetune_torch check\` printed something other than JSON`));
      }
    });
  });
}
