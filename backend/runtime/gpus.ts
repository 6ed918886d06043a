// The GPUs of this machine, as nvidia-smi reports them. No nvidia-smi (no NVIDIA driver) means no GPUs: the
// scheduler then runs one job at a time on the CPU.
import { execFile } from 'node:child_process';
import type { GpuInfo } from '../../common/api';

const MIB = 1024 * 1024;

/** Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(output: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of output.split(/\r?\n/)) {
    const fields = line.split(',').map((f) => f.trim());
    if (fields.length < 4) continue;
    const [index, name, total, free] = fields as [string, string, string, string];
    const i = Number(index);
    const t = Number(total);
    if (!Number.isInteger(i) || !Number.isFinite(t)) continue;
    const gpu: GpuInfo = { index: i, name, memory_total: t * MIB };
    const f = Number(free);
    if (Number.isFinite(f)) gpu.memory_free = f * MIB;
    gpus.push(gpu);
  }
  return gpus;
}

/** Asks nvidia-smi for the GPUs; resolves to [] when it is missing, fails or hangs (5 s). */
export function detectGpus(): Promise<GpuInfo[]> {
  return new Promise((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=index,name,memory.total,memory.free', '--format=csv,noheader,nounits'],
      { timeout: 5000, windowsHide: true },
      (error, stdout) => resolve(error ? [] : parseNvidiaSmi(stdout)),
    );
  });
}
