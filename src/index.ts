/**
 * graceful-drain: track in-flight work, drain within one budget, and hand running workflows off
 * across a cluster when the last member of a group stops.
 *
 * @packageDocumentation
 */
export { DrainController } from './controller.js';
export type * from './types.js';
export type { DrainControllerOptions, RecoveryHook, RecoveryPolicy, UnreachablePolicy } from './options.js';
export type { HandOffDecision, ParkProgress, PhaseName, PhaseReport, ReportedError } from './report.js';
export type { RecoveryReport, ResumeProgress, ResumeReport, ShutdownReport } from './report.js';
export { installSignalHandlers, type ShutdownCause, type SignalHandlerOptions } from './signals.js';
export { createProbeHandler, type ProbeHandler, type ProbeHandlerOptions } from './probes.js';
export { channels, subscribe, type ChannelMessages, type ChannelName, type DrainMessage } from './metrics.js';
export type {
  LockWaitMessage,
  ParkMessage,
  RecoveryMessage,
  ResumeMessage,
  StateMessage,
} from './metrics.js';
export * from './errors.js';
export type * from './coordinator.js';
export type * from './workflow-store.js';
