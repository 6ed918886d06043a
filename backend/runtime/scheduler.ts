// The queue: as many concurrent jobs as slots (GPUs, or one CPU slot), first in first out. Strictly FIFO: a job
// that needs more slots than are free waits at the head rather than being overtaken, so that a big job is not
// starved by small ones.

/** What the scheduler asks of the runtime. */
export interface SchedulerHooks {
  /** A job got its slots: start it (the scheduler counts it as running until `release`). */
  start(jobId: string): void;
  /** The queue changed: every queued job with its 1-based position. */
  positions(queue: readonly { jobId: string; position: number }[]): void;
}

/** FIFO queue over a fixed number of slots (see the file comment). */
export class Scheduler {
  private readonly queue: { jobId: string; need: number }[] = [];
  private readonly running = new Map<string, number>();
  /** Queued jobs that were put at the front (resumed after a restart). */
  private readonly frontIds = new Set<string>();

  constructor(
    /** Slots in all. */
    readonly slots: number,
    private readonly hooks: SchedulerHooks,
  ) {}

  /** Slots a job of `gpus` GPUs takes: a CPU job (0) takes one. */
  static need(gpus: number): number {
    return Math.max(1, Math.floor(gpus));
  }

  /** Queues a job (at the back, or at the front for a job that was running when the backend stopped). */
  enqueue(jobId: string, gpus: number, front = false): void {
    const item = { jobId, need: Scheduler.need(gpus) };
    if (front) {
      // Behind the other jobs put at the front, ahead of the ones queued normally.
      const at = this.queue.findIndex((q) => !this.frontIds.has(q.jobId));
      this.queue.splice(at < 0 ? this.queue.length : at, 0, item);
      this.frontIds.add(jobId);
    } else {
      this.queue.push(item);
    }
    this.pump();
  }

  /** Takes a queued job out of the queue; false when it was not queued. */
  remove(jobId: string): boolean {
    const at = this.queue.findIndex((q) => q.jobId === jobId);
    if (at < 0) return false;
    this.queue.splice(at, 1);
    this.frontIds.delete(jobId);
    this.pump();
    return true;
  }

  /** A running job ended: its slots are free. */
  release(jobId: string): void {
    if (!this.running.delete(jobId)) return;
    this.pump();
  }

  /** 1-based position of a queued job, or null. */
  position(jobId: string): number | null {
    const at = this.queue.findIndex((q) => q.jobId === jobId);
    return at < 0 ? null : at + 1;
  }

  /** Jobs running and queued now. */
  counts(): { running: number; queued: number } {
    return { running: this.running.size, queued: this.queue.length };
  }

  private free(): number {
    let used = 0;
    for (const n of this.running.values()) used += n;
    return this.slots - used;
  }

  private pump(): void {
    const started: string[] = [];
    while (this.queue.length > 0 && this.queue[0]!.need <= this.free()) {
      const { jobId, need } = this.queue.shift()!;
      this.frontIds.delete(jobId);
      this.running.set(jobId, need);
      started.push(jobId);
    }
    // Positions first, so that a started job's record is never written with a stale position after its start.
    this.hooks.positions(this.queue.map((q, i) => ({ jobId: q.jobId, position: i + 1 })));
    for (const jobId of started) this.hooks.start(jobId);
  }
}
