/**
 * graceful-drain: track in-flight work, drain within one budget, and hand running workflows off
 * across a cluster when the last member of a group stops.
 *
 * @packageDocumentation
 */
export { DrainController } from './controller.js';
export type * from './types.js';
export type { DrainControllerOptions, UnreachablePolicy } from './options.js';
export type {
  HandOffDecision,
  ParkProgress,
  PhaseName,
  PhaseReport,
  ReportedError,
  ResumeProgress,
  ResumeReport,
  ShutdownReport,
} from './report.js';
export { installSignalHandlers } from './signals.js';
export type { ShutdownCause, SignalHandlerOptions } from './signals.js';
export { createProbeHandler } from './probes.js';
export type { ProbeHandler, ProbeHandlerOptions } from './probes.js';
export { channels, subscribe } from './metrics.js';
export type {
  ChannelMessages,
  ChannelName,
  DrainMessage,
  LockWaitMessage,
  ParkMessage,
  ResumeMessage,
  StateMessage,
} from './metrics.js';
export * from './errors.js';
export type * from './coordinator.js';
export type * from './workflow-store.js';
