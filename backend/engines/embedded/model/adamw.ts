// AdamW with torch.optim.AdamW's semantics: decoupled weight decay (p ← p − lr·wd·p) before the bias-corrected
// Adam update, and gradient clipping by the global L2 norm like torch.nn.utils.clip_grad_norm_.
import type { Parameter } from './qwen2';

/** AdamW hyper-parameters; the defaults are torch's except weight decay, 0 here (torch's is 0.01). */
export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** What a resumed run needs to continue the optimizer exactly: the step count and both moments per parameter. */
export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

/** Why an optimizer state was refused. */
export class OptimizerError extends Error {
  constructor(
    readonly code: 'invalid_state',
    message: string,
  ) {
    super(message);
  }
  static is(e: unknown): e is OptimizerError {
    return e instanceof OptimizerError;
  }
}

/** The AdamW optimizer over a fixed list of parameters (their order is the order of the state's moments). */
export class AdamW {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private stepCount = 0;
  private m: Float32Array[];
  private v: Float32Array[];

  constructor(
    private readonly params: Parameter[],
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.m = params.map((p) => new Float32Array(p.data.length));
    this.v = params.map((p) => new Float32Array(p.data.length));
  }

  /** One update of every parameter from its gradient (gradients are left as they are). */
  step(learningRate: number): void {
    this.stepCount++;
    const { beta1, beta2, eps } = this;
    const correction1 = 1 - beta1 ** this.stepCount;
    const sqrtCorrection2 = Math.sqrt(1 - beta2 ** this.stepCount);
    const stepSize = learningRate / correction1;
    const decay = 1 - learningRate * this.weightDecay;
    for (let k = 0; k < this.params.length; k++) {
      const { data, grad } = this.params[k];
      const m = this.m[k];
      const v = this.v[k];
      for (let i = 0; i < data.length; i++) {
        const g = grad[i];
        const mi = beta1 * m[i] + (1 - beta1) * g;
        const vi = beta2 * v[i] + (1 - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        data[i] = data[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtCorrection2 + eps);
      }
    }
  }

  /** Copies of the step count and moments (safe to keep while training goes on). */
  getState(): AdamWState {
    return { step: this.stepCount, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  /** Restores a state taken from an optimizer over parameters of the same shapes, in the same order. */
  setState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new OptimizerError('invalid_state', `step must be a non-negative integer, got ${state.step}`);
    for (const [name, list] of [['m', state.m], ['v', state.v]] as const) {
      if (list.length !== this.params.length) {
        throw new OptimizerError('invalid_state', `state has ${list.length} ${name} tensors for ${this.params.length} parameters`);
      }
      list.forEach((a, k) => {
        if (a.length !== this.params[k].data.length) {
          throw new OptimizerError('invalid_state', `${name}[${k}] has ${a.length} values but parameter ${this.params[k].name} has ${this.params[k].data.length}`);
        }
      });
    }
    this.stepCount = state.step;
    this.m = state.m.map((a) => Float32Array.from(a));
    this.v = state.v.map((a) => Float32Array.from(a));
  }
}

/**
 * Scales all gradients together so their global L2 norm is at most maxNorm (torch's rule: factor
 * maxNorm / (norm + 1e-6) when below 1). Returns the norm before clipping; a non-finite norm is returned
 * without touching the gradients, so the caller can stop the run with a clear reason.
 */
export function clipGradNorm(params: Parameter[], maxNorm: number): number {
  let sum = 0;
  for (const p of params) {
    const g = p.grad;
    for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  }
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm)) return norm;
  const factor = maxNorm / (norm + 1e-6);
  if (factor < 1) {
    for (const p of params) {
      const g = p.grad;
      for (let i = 0; i < g.length; i++) g[i] *= factor;
    }
  }
  return norm;
}
