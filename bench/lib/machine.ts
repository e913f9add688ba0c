import os from 'node:os';

/** The machine a run was taken on: figures from different machines are not comparable. */
export interface Machine {
  readonly date: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memory: string;
  readonly os: string;
  readonly node: string;
  readonly v8: string;
  /** The 1-minute load average when the run began, a hint of how noisy the machine was. */
  readonly loadAtStart: number;
  loadAtEnd?: number;
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    cpu: cpus[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memory: `${Math.round(os.totalmem() / 1024 ** 3)} GiB`,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    v8: process.versions.v8,
    loadAtStart: os.loadavg()[0] ?? 0,
  };
}
