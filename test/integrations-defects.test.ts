/**
 * Defects found in review of the integrations (amqplib, http), signals, probes and metrics. Each test pins
 * one defect and failed before its fix. Real RabbitMQ, unique queue names.
 */
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { type Channel, type ChannelModel, connect } from 'amqplib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  createProbeHandler,
  DrainController,
  installSignalHandlers,
} from '../src/index.js';
import { consume } from '../src/integrations/amqplib.js';
import { trackHttpServer } from '../src/integrations/http.js';
import { AMQP_URL, uniqueName } from './support/env.js';
import { deferred } from './support/drain.js';

describe('review: graceful-drain/amqplib', () => {
  let admin: ChannelModel;
  let adminChannel: Channel;
  let queue: string;
  let connection: ChannelModel;
  let channel: Channel;

  beforeAll(async () => {
    admin = await connect(AMQP_URL);
    adminChannel = await admin.createChannel();
  });
  afterAll(async () => {
    await admin.close();
  });
  beforeEach(async () => {
    queue = uniqueName('gd_review_amqp');
    await adminChannel.assertQueue(queue, { durable: false });
    connection = await connect(AMQP_URL);
    channel = await connection.createChannel();
  });
  afterEach(async () => {
    await connection.close().catch(() => {});
    await adminChannel.deleteQueue(queue);
  });

  async function publish(ids: readonly string[]): Promise<void> {
    const pub = await admin.createConfirmChannel();
    for (const id of ids) pub.sendToQueue(queue, Buffer.from(id), { messageId: id });
    await pub.waitForConfirms();
    await pub.close();
  }

  // src/integrations/amqplib.ts compileConsumeOptions: checkCount has no upper bound, but AMQP's
  // basic.qos prefetch-count is a 16-bit field: amqplib throws a bare RangeError from its encoder.
  it('refuses a prefetch above 65535 with a ConfigurationError naming `prefetch` and the value', async () => {
    const drain = new DrainController();
    await drain.start();
    const attempt = consume(drain, channel, queue, () => {}, { prefetch: 70_000 });
    await expect(attempt).rejects.toThrow(ConfigurationError);
    await expect(attempt).rejects.toThrow(/`prefetch`.*`70000`/);
    await drain.shutdown();
  });

  // src/integrations/amqplib-consumer.ts #failed: only the drain deadline is exempted; a handler that
  // stops because `channelClosed` aborted (as the docs tell it to) is taken for a failure: the
  // requeueOnError policy is asked, counts it, and `handlerError` says the message was dropped
  // (`requeue: false`) while the broker had in fact put it back.
  it('does not take a handler stopped by `channelClosed` for a failed one (no policy call, no handlerError)', async () => {
    const drain = new DrainController();
    await drain.start();
    const running = deferred();
    const policyCalls: number[] = [];
    const consumer = await consume(
      drain,
      channel,
      queue,
      (_msg, { channelClosed }) =>
        new Promise((_resolve, reject) => {
          running.resolve();
          channelClosed.addEventListener('abort', () => reject(channelClosed.reason as Error), {
            once: true,
          });
        }),
      {
        requeueOnError: (_error, _msg, failures) => {
          policyCalls.push(failures);
          return false; // "dead-letter it"
        },
      },
    );
    const handlerErrors: unknown[] = [];
    consumer.on('handlerError', (info) => handlerErrors.push(info));
    await publish(['orphan-1']);
    await running.promise;
    // A channel-level error: the broker closes the channel, the message goes back to the queue.
    await expect(channel.checkQueue(uniqueName('gd_review_missing'))).rejects.toThrow(/404/);
    await drain.onIdle();
    expect(consumer.stats).toMatchObject({ unsettled: 1, requeued: 0, discarded: 0 });
    expect(policyCalls).toEqual([]);
    expect(handlerErrors).toEqual([]);
    await drain.shutdown();
    await consumer.close();
  });
});

describe('review: trackHttpServer()', () => {
  // src/integrations/http.ts #beginShutdown: the delay only depends on the server task, not on whether
  // the server listens. A server that is not listening (its listen() failed with EADDRINUSE, or it was
  // closed before it was tracked) can receive nothing, yet the shutdown waits the whole
  // shutdownDelayMs (5 s by default) before it finds out, and `closed` stays pending meanwhile.
  it('does not wait shutdownDelayMs for a server that is not listening', async () => {
    const drain = new DrainController({ shutdownTimeoutMs: 120_000 });
    await drain.start();
    const server = http.createServer((_req, res) => res.end('ok'));
    const tracked = trackHttpServer(drain, server, { shutdownDelayMs: 60_000 });
    const shutdown = drain.shutdown();
    await new Promise((resolve) => setImmediate(resolve));
    try {
      expect(tracked.state).toBe('closed');
    } finally {
      await drain.shutdown({ force: true });
      await shutdown;
    }
  });
});

describe('review: createProbeHandler()', () => {
  // src/probes.ts createProbeHandler: `drain` is never checked (every other entry point does), so a
  // wrong value is accepted and fails later, inside the request handler (a TypeError thrown from an
  // http 'request' listener crashes the process), or answers 503/200 forever for `{}`.
  it('refuses something that is not a DrainController, naming `drain`', () => {
    expect(() => createProbeHandler(undefined as never)).toThrow(ConfigurationError);
    expect(() => createProbeHandler({} as never)).toThrow(/`drain`/);
  });
});

describe('review: installSignalHandlers()', () => {
  // src/signals.ts handler: `exitCode(report)` runs before `onShutdown` inside the same `.then`; when it
  // throws, the `.catch` says "the shutdown failed" and exits: `onShutdown` (closing the consumer, the
  // connection, flushing telemetry) is skipped although the shutdown itself went fine.
  it('still runs onShutdown (and exits 1) when exitCode throws', async () => {
    const drain = new DrainController();
    await drain.start();
    const exited = deferred<number>();
    let ranOnShutdown = false;
    const errors: unknown[][] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void errors.push(args);
    const uninstall = installSignalHandlers(drain, {
      signals: ['SIGUSR2'],
      exit: (code) => exited.resolve(code),
      exitCode: () => {
        throw new Error('bug in exitCode');
      },
      onShutdown: () => {
        ranOnShutdown = true;
      },
    });
    try {
      process.kill(process.pid, 'SIGUSR2');
      expect(await exited.promise).toBe(1);
      expect(ranOnShutdown).toBe(true);
    } finally {
      console.error = consoleError;
      uninstall();
    }
  });

  // src/signals.ts: nothing stopped a second install on one controller. Each install runs its own
  // shutdown handler and calls its own exit: the first to finish exits the process while the other's
  // onShutdown (closing a consumer, flushing telemetry) may still be running.
  it('refuses a second install on the same controller until uninstall()', () => {
    const drain = new DrainController();
    const other = new DrainController();
    const before = process.listenerCount('SIGUSR2');
    const uninstall = installSignalHandlers(drain, { signals: ['SIGUSR2'], exit: () => {} });
    const uninstalls = [uninstall];
    try {
      expect(() =>
        uninstalls.push(installSignalHandlers(drain, { signals: ['SIGUSR2'], exit: () => {} })),
      ).toThrow(ConfigurationError);
      expect(() =>
        uninstalls.push(installSignalHandlers(drain, { signals: ['SIGUSR2'], exit: () => {} })),
      ).toThrow(/`drain`/);
      expect(process.listenerCount('SIGUSR2')).toBe(before + 1);
      // Another controller is not affected; after uninstall() the first can install again.
      uninstalls.push(installSignalHandlers(other, { signals: ['SIGUSR2'], exit: () => {} }));
      uninstall();
      uninstall(); // idempotent: does not clear a later install's claim
      uninstalls.push(installSignalHandlers(drain, { signals: ['SIGUSR2'], exit: () => {} }));
      expect(() => installSignalHandlers(drain, { exit: () => {} })).toThrow(ConfigurationError);
    } finally {
      for (const u of uninstalls) u();
    }
    expect(process.listenerCount('SIGUSR2')).toBe(before);
  });
});

describe('review: subscribe() (metrics)', () => {
  // src/metrics.ts subscribe: the listener is called bare by diagnostics_channel, which rethrows a
  // subscriber's error as an uncaught exception on the next tick: a bug in a metrics callback kills the
  // process in the middle of its shutdown, the task in flight unfinished. (Controller event listeners
  // that throw are logged and change nothing else: README "A listener that throws is logged".)
  it('a listener that throws does not crash the process mid-shutdown', () => {
    const src = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const script = `
      const { DrainController, subscribe } = await import(${JSON.stringify(src)});
      subscribe('state', (m) => { if (m.to === 'draining') throw new Error('metrics bug'); });
      const drain = new DrainController({ shutdownTimeoutMs: 5000 });
      await drain.start();
      let finished = false;
      void drain.track(() => new Promise((r) => setTimeout(r, 200)).then(() => { finished = true; }));
      const report = await drain.shutdown();
      console.log(JSON.stringify({ outcome: report.outcome, finished }));
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(child.stderr).not.toMatch(/metrics bug/);
    expect(child.status).toBe(0);
    expect(child.stdout.trim()).toBe('{"outcome":"clean","finished":true}');
  });
});
