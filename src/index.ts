export * from './errors.js';
export type * from './coordinator.js';
export type * from './workflow-store.js';
