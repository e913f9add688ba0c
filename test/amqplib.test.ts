import { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, connect } from 'amqplib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { ConfigurationError, DrainClosedError, DrainController } from '../src/index.js';
import {
  type AmqpChannel,
  type AmqpMessage,
  type ConsumerStats,
  consume,
  type DrainConsumer,
  requeueUpTo,
} from '../src/integrations/amqplib.js';
import { AMQP_URL, uniqueName } from './support/env.js';

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the event's first argument the `count`-th time it fires. */
function nth<T>(emitter: DrainConsumer, event: 'handlerError' | 'channelClosed', count = 1): Promise<T> {
  return new Promise((resolve) => {
    let seen = 0;
    emitter.on(event, (info: unknown) => {
      if (++seen === count) resolve(info as T);
    });
  });
}

let admin: ChannelModel;
let adminChannel: Channel;
let queue: string;
let connection: ChannelModel;
let channel: Channel;
const extraQueues: string[] = [];
const extraExchanges: string[] = [];

beforeAll(async () => {
  admin = await connect(AMQP_URL);
  adminChannel = await admin.createChannel();
});

afterAll(async () => {
  await admin.close();
});

beforeEach(async () => {
  queue = uniqueName('gd_amqp');
  await adminChannel.assertQueue(queue, { durable: false });
  connection = await connect(AMQP_URL);
  channel = await connection.createChannel();
});

afterEach(async () => {
  await connection.close().catch(() => {});
  for (const q of [queue, ...extraQueues.splice(0)]) await adminChannel.deleteQueue(q);
  for (const x of extraExchanges.splice(0)) await adminChannel.deleteExchange(x);
});

async function publish(ids: readonly string[], target = queue, withMessageId = true): Promise<void> {
  const pub = await admin.createConfirmChannel();
  for (const id of ids) pub.sendToQueue(target, Buffer.from(id), withMessageId ? { messageId: id } : {});
  await pub.waitForConfirms();
  await pub.close();
}

/**
 * Takes every message off `target` with a fresh consumer: waits until at least `atLeast` came, then
 * until none came for `quietMs`, so that a duplicate would be seen too.
 */
async function takeAll(target: string, atLeast: number, quietMs = 250): Promise<ConsumeMessage[]> {
  const ch = await admin.createChannel();
  await ch.prefetch(500);
  const got: ConsumeMessage[] = [];
  let last = Date.now();
  const { consumerTag } = await ch.consume(target, (msg) => {
    if (msg === null) return;
    got.push(msg);
    last = Date.now();
    ch.ack(msg);
  });
  const giveUp = Date.now() + 10_000;
  while (got.length < atLeast || Date.now() - last < quietMs) {
    if (Date.now() > giveUp) throw new Error(`only ${got.length} of ${atLeast} messages came back`);
    await sleep(25);
  }
  await ch.cancel(consumerTag);
  await ch.close();
  return got;
}

async function started(options?: ConstructorParameters<typeof DrainController>[0]): Promise<DrainController> {
  const drain = new DrainController(options);
  await drain.start();
  return drain;
}

describe('consume()', () => {
  it('processes every message exactly once or leaves it on the queue, across a shutdown under load', async () => {
    const initial = Array.from({ length: 40 }, (_, i) => `m-${i}`);
    await publish(initial);
    const published = new Set(initial);
    const drain = await started({ shutdownTimeoutMs: 5_000 });
    // A slower intake stopper first (a server closing, say): handlers finish meanwhile, the broker
    // refills the prefetch window, and those deliveries arrive with intake already closed.
    drain.onStopIntake(() => sleep(150));

    const order: string[] = [];
    const processed = new Map<string, number>();
    const tenDone = deferred();
    const consumer = await consume(
      drain,
      channel,
      queue,
      async (msg) => {
        await sleep(30);
        const id = msg.properties.messageId as string;
        processed.set(id, (processed.get(id) ?? 0) + 1);
        if (processed.size === 10) tenDone.resolve();
      },
      { prefetch: 5 },
    );
    const returned: string[] = [];
    consumer.on('returned', ({ label, reason }) => reason === 'intake-closed' && returned.push(label));
    consumer.on('cancelled', ({ by }) => order.push(`cancelled:${by}`));
    drain.on('drained', () => order.push('drained'));
    drain.on('stopped', () => order.push('stopped'));
    channel.on('close', () => order.push('channel-closed'));

    await tenDone.promise;
    // Keep publishing while the shutdown runs.
    let publishing = true;
    const publisher = (async () => {
      const pub = await admin.createConfirmChannel();
      for (let i = 0; publishing; i++) {
        const id = `late-${i}`;
        published.add(id);
        pub.sendToQueue(queue, Buffer.from(id), { messageId: id });
        await sleep(5);
      }
      await pub.waitForConfirms();
      await pub.close();
    })();

    const report = await drain.shutdown({ reason: 'test' });
    await consumer.close();
    publishing = false;
    await publisher;

    expect(report.outcome).toBe('clean');
    expect(report.inFlightAtStart).toBeGreaterThan(0);
    expect(report.completed).toBe(report.inFlightAtStart);
    expect([...processed.values()].every((n) => n === 1)).toBe(true);
    expect(returned.length).toBeGreaterThan(0);
    expect(new Set(returned).size).toBe(returned.length);
    for (const id of returned) expect(processed.has(id)).toBe(false);
    expect(order).toEqual(['cancelled:shutdown', 'drained', 'stopped', 'channel-closed']);
    expect(consumer.stats).toMatchObject({
      acked: processed.size,
      rejected: 0,
      returned: returned.length,
      unsettled: 0,
    });

    const left = (await takeAll(queue, published.size - processed.size)).map(
      (m) => m.properties.messageId as string,
    );
    expect(new Set(left).size).toBe(left.length);
    for (const id of left) expect(processed.has(id)).toBe(false);
    expect(new Set([...left, ...processed.keys()])).toEqual(published);
  });

  it('nacks what arrives after intake closed back onto the queue at once, without running it', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `p-${i}`);
    await publish(ids);
    const drain = await started({ shutdownTimeoutMs: 5_000 });
    drain.onStopIntake(() => sleep(150));
    const processed: string[] = [];
    const firstDone = deferred();
    const consumer = await consume(
      drain,
      channel,
      queue,
      async (msg) => {
        await sleep(20);
        processed.push(msg.properties.messageId as string);
        firstDone.resolve();
      },
      { prefetch: 3, closeChannel: false },
    );
    const returned: string[] = [];
    consumer.on('returned', ({ label }) => returned.push(label));
    // Observed, not replaced: put back unprocessed is a nack (not counted as a failed delivery).
    const reject = vi.spyOn(channel, 'reject');
    const nack = vi.spyOn(channel, 'nack');
    await firstDone.promise;
    await drain.shutdown();
    await consumer.close();
    expect(returned.length).toBeGreaterThan(0);
    // Held until the broker confirmed the cancel: nacked earlier, it would come straight back here.
    expect(new Set(returned).size).toBe(returned.length);
    expect(nack).toHaveBeenCalledTimes(returned.length);
    expect(nack.mock.calls.every(([, allUpTo, requeue]) => allUpTo === false && requeue === true)).toBe(true);
    expect(reject).not.toHaveBeenCalled();
    // The channel is still open: a late delivery not nacked would sit unacked, never counted as ready.
    // (The broker's count trails the nacks by a moment: poll it, with a deadline.)
    const expected = ids.length - processed.length;
    let ready = -1;
    for (const giveUp = Date.now() + 2_000; ready !== expected && Date.now() < giveUp; await sleep(20)) {
      ready = (await channel.checkQueue(queue)).messageCount;
    }
    expect(ready).toBe(expected);
    expect(new Set(processed).size).toBe(processed.length);
  });

  it('rejects a failing handler’s message: requeued by default, acked once a retry succeeds', async () => {
    const drain = await started();
    const consumer = await consume(drain, channel, queue, (msg) => {
      if (!msg.fields.redelivered) throw new Error('flaky');
    });
    const failed = nth<{ requeue: boolean; label: string }>(consumer, 'handlerError');
    await publish(['flaky-1']);
    expect(await failed).toMatchObject({ requeue: true, label: 'flaky-1' });
    while (consumer.stats.acked === 0) await sleep(10);
    expect(consumer.stats).toMatchObject({ delivered: 2, rejected: 1, requeued: 1, acked: 1 });
    await drain.shutdown();
    await consumer.close();
  });

  it('dead-letters a poison message when requeueOnError says no', async () => {
    const dlx = `${queue}.dlx`;
    const dlq = `${queue}.dlq`;
    extraExchanges.push(dlx);
    extraQueues.push(`${queue}.poison`, dlq);
    await adminChannel.assertExchange(dlx, 'fanout', { durable: false });
    await adminChannel.assertQueue(dlq, { durable: false });
    await adminChannel.bindQueue(dlq, dlx, '');
    const poisonQueue = `${queue}.poison`;
    await adminChannel.assertQueue(poisonQueue, { durable: false, deadLetterExchange: dlx });

    const drain = await started();
    const consumer = await consume(
      drain,
      channel,
      poisonQueue,
      () => {
        throw new Error('poison');
      },
      { requeueOnError: (_error, msg) => !msg.fields.redelivered },
    );
    const decisions: boolean[] = [];
    consumer.on('handlerError', ({ requeue }) => decisions.push(requeue));
    // Observed, not replaced: a failure is a reject (RabbitMQ 4.3+ counts it toward delivery-limit).
    const reject = vi.spyOn(channel, 'reject');
    const nack = vi.spyOn(channel, 'nack');
    const second = nth(consumer, 'handlerError', 2);
    await publish(['poison-1'], poisonQueue);
    await second;
    expect(decisions).toEqual([true, false]);
    expect(reject.mock.calls.map(([, requeue]) => requeue)).toEqual([true, false]);
    expect(nack).not.toHaveBeenCalled();
    const [dead] = await takeAll(dlq, 1);
    expect(dead?.properties.messageId).toBe('poison-1');
    expect(dead?.properties.headers?.['x-death']).toBeDefined();
    expect(consumer.stats).toMatchObject({ rejected: 2, acked: 0 });
    await drain.shutdown();
    await consumer.close();
    expect((await adminChannel.checkQueue(poisonQueue)).messageCount).toBe(0);
  });

  it('requeues a message whose handler the drain deadline cut short, even with requeueOnError false', async () => {
    const drain = await started({ shutdownTimeoutMs: 600, abortGraceMs: 200 });
    const running = deferred();
    const consumer = await consume(
      drain,
      channel,
      queue,
      (_msg, { signal }) =>
        new Promise((_resolve, reject) => {
          running.resolve();
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        }),
      { requeueOnError: false },
    );
    const returned: unknown[] = [];
    consumer.on('returned', (info) => returned.push(info));
    consumer.on('handlerError', (info) => returned.push(info));
    await publish(['slow-1']);
    await running.promise;
    const report = await drain.shutdown();
    await consumer.close();
    expect(report.outcome).toBe('timed-out');
    expect(report.abortedLabels).toEqual(['slow-1']);
    expect(returned).toEqual([{ label: 'slow-1', reason: 'deadline' }]);
    expect(consumer.stats).toMatchObject({ rejected: 0, returned: 0, abandoned: 1, pending: 0 });
    const [back] = await takeAll(queue, 1);
    expect(back?.properties.messageId).toBe('slow-1');
  });

  it('puts a straggler back on the queue by closing the channel, and reports its failed ack', async () => {
    const drain = await started({ shutdownTimeoutMs: 400, abortGraceMs: 100 });
    const running = deferred();
    const release = deferred();
    const consumer = await consume(drain, channel, queue, async () => {
      running.resolve();
      await release.promise; // ignores both signals
    });
    const failures: string[] = [];
    consumer.on('failure', ({ operation, label }) => failures.push(`${operation}:${label}`));
    await publish(['stuck-1']);
    await running.promise;
    const report = await drain.shutdown();
    await consumer.close();
    expect(report.stragglerLabels).toEqual(['stuck-1']);
    const [back] = await takeAll(queue, 1);
    expect(back?.properties.messageId).toBe('stuck-1');
    expect(back?.fields.redelivered).toBe(true);
    release.resolve();
    while (consumer.inFlight > 0) await sleep(5);
    expect(failures).toEqual(['ack:stuck-1']);
    expect(consumer.stats).toMatchObject({ acked: 0, unsettled: 1 });
  });

  it('reports a channel the broker closed under it, without crashing the host; the message goes back', async () => {
    const drain = await started();
    const running = deferred();
    const release = deferred();
    let channelClosed: AbortSignal | undefined;
    const consumer = await consume(drain, channel, queue, async (_msg, context) => {
      channelClosed = context.channelClosed;
      running.resolve();
      await release.promise;
    });
    const closed = nth<{ error: Error; inFlight: number }>(consumer, 'channelClosed');
    await publish(['orphan-1']);
    await running.promise;
    // A channel-level error: the broker closes the channel (404) and amqplib emits `error` on it.
    await expect(channel.checkQueue(uniqueName('gd_missing'))).rejects.toThrow(/404/);
    const info = await closed;
    expect(info.error.message).toMatch(/NOT_FOUND/);
    expect(info.inFlight).toBe(1);
    expect(channelClosed?.aborted).toBe(true);
    expect(consumer.cancelled).toBe(true);

    const failed = new Promise((resolve) => consumer.once('failure', resolve));
    release.resolve();
    expect(await failed).toMatchObject({ operation: 'ack', label: 'orphan-1' });
    const [back] = await takeAll(queue, 1);
    expect(back?.properties.messageId).toBe('orphan-1');

    const report = await drain.shutdown();
    await consumer.close();
    expect(report.outcome).toBe('clean');
    expect(report.errors).toEqual([]);
  });

  it('reports the broker cancelling it (queue deleted) and still shuts down cleanly', async () => {
    const drain = await started();
    const consumer = await consume(drain, channel, queue, () => {});
    const cancelled = new Promise((resolve) => consumer.once('cancelled', resolve));
    await adminChannel.deleteQueue(queue);
    expect(await cancelled).toEqual({ by: 'broker' });
    expect(consumer.cancelled).toBe(true);
    const report = await drain.shutdown();
    await consumer.close();
    expect(report.outcome).toBe('clean');
    await adminChannel.assertQueue(queue, { durable: false }); // for afterEach
  });

  it('rejects with amqplib’s error for a queue that does not exist, leaving no intake stopper behind', async () => {
    const drain = await started();
    await expect(consume(drain, channel, uniqueName('gd_missing'), () => {})).rejects.toThrow(/404/);
    const report = await drain.shutdown();
    expect(report.errors).toEqual([]);
    expect(report.phases.map((p) => p.name)).not.toContain('stop-intake');
  });

  it('close() cancels, closes the channel and the given connection; every caller gets the same promise', async () => {
    const drain = await started();
    const consumer = await consume(drain, channel, queue, () => {}, { connection });
    const events: string[] = [];
    consumer.on('cancelled', ({ by }) => events.push(`cancelled:${by}`));
    channel.on('close', () => events.push('channel-closed'));
    connection.on('close', () => events.push('connection-closed'));
    const first = consumer.close();
    expect(consumer.close()).toBe(first);
    await first;
    expect(events).toEqual(['cancelled:user', 'channel-closed', 'connection-closed']);
    expect(consumer.cancelled).toBe(true);
    expect(consumer.consumerTag).toMatch(/\S/);
    await drain.shutdown();
  });

  it('closeChannel: false leaves the channel open for the host', async () => {
    const drain = await started();
    const consumer = await consume(drain, channel, queue, () => {}, { closeChannel: false });
    await drain.shutdown();
    await consumer.close();
    expect(consumer.cancelled).toBe(true);
    await expect(channel.checkQueue(queue)).resolves.toMatchObject({ queue });
  });

  it('refuses to start before drain.start() or after shutdown began', async () => {
    const drain = new DrainController();
    await expect(consume(drain, channel, queue, () => {})).rejects.toThrow(DrainClosedError);
    await expect(consume(drain, channel, queue, () => {})).rejects.toThrow(/drain\.start\(\)/);
    await drain.start();
    void drain.shutdown();
    await expect(consume(drain, channel, queue, () => {})).rejects.toThrow(DrainClosedError);
  });

  it('stats: every delivery is acked, requeued, discarded, returned, abandoned, unsettled or pending', async () => {
    const drain = await started({ shutdownTimeoutMs: 1_000, abortGraceMs: 100 });
    drain.onStopIntake(() => sleep(150)); // handlers finish meanwhile: the window refills with late deliveries
    const release = { 'stuck-1': deferred(), 'stuck-2': deferred() };
    const acks = Array.from({ length: 30 }, (_, i) => `ack-${i}`);
    await publish(['requeue-1', 'discard-1', 'abandon-1', 'stuck-1', 'stuck-2', ...acks]);
    const consumer = await consume(
      drain,
      channel,
      queue,
      async (msg, { signal }) => {
        const id = msg.properties.messageId as string;
        if (id === 'discard-1' || (id === 'requeue-1' && !msg.fields.redelivered)) throw new Error(id);
        if (id === 'abandon-1') {
          await new Promise((_resolve, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }),
          );
        }
        if (id === 'stuck-1' || id === 'stuck-2') await release[id].promise; // ignores both signals
        await sleep(40);
      },
      { prefetch: 6, requeueOnError: (_error, msg) => msg.properties.messageId !== 'discard-1' },
    );
    let returnedEvents = 0;
    consumer.on('returned', ({ reason }) => reason === 'intake-closed' && returnedEvents++);
    const sum = (s: ConsumerStats): number =>
      s.acked + s.requeued + s.discarded + s.returned + s.abandoned + s.unsettled + s.pending;
    for (let s = consumer.stats; s.acked < 2 || s.discarded === 0; s = consumer.stats) await sleep(10);

    await drain.shutdown();
    await consumer.close();
    release['stuck-1'].resolve(); // its ack fails: the channel is closed
    while (consumer.inFlight > 1) await sleep(5);
    const stats = consumer.stats;
    expect(stats).toMatchObject({
      requeued: 1,
      discarded: 1,
      abandoned: 1,
      unsettled: 1,
      pending: 1,
      rejected: 2,
    });
    expect(stats.acked).toBeGreaterThanOrEqual(2);
    expect(stats.returned).toBeGreaterThan(0);
    expect(stats.returned).toBe(returnedEvents);
    expect(stats.delivered).toBe(sum(stats));

    release['stuck-2'].resolve();
    while (consumer.inFlight > 0) await sleep(5);
    expect(consumer.stats).toMatchObject({ unsettled: 2, pending: 0, delivered: stats.delivered });
    expect(sum(consumer.stats)).toBe(stats.delivered);
  });

  for (const type of ['classic', 'quorum'] as const) {
    it(`requeueOnError: a message put back unrun by a shutdown is not counted as failed (${type} queue)`, async () => {
      const target = uniqueName(`gd_amqp_${type}`);
      extraQueues.push(target);
      await adminChannel.assertQueue(target, { durable: true, arguments: { 'x-queue-type': type } });
      // On the quorum queue the messages carry no messageId: failures are told apart by content.
      await publish(['first', 'target'], target, type === 'classic');

      // Consumer A: 'target' arrives after intake closed (its window refilled as 'first' finished).
      const drainA = await started({ shutdownTimeoutMs: 5_000 });
      drainA.onStopIntake(() => sleep(150));
      const running = deferred();
      const finish = deferred();
      const ran: string[] = [];
      const a = await consume(
        drainA,
        channel,
        target,
        async (msg) => {
          ran.push(msg.content.toString());
          running.resolve();
          await finish.promise;
        },
        { prefetch: 1 },
      );
      await running.promise;
      const stopped = drainA.shutdown();
      finish.resolve();
      await stopped;
      await a.close();
      expect(ran).toEqual(['first']);
      expect(a.stats).toMatchObject({ delivered: 2, acked: 1, returned: 1 });

      // Consumer B (another process, say): 'target' fails twice under "one retry".
      const drainB = await started();
      const seen: { redelivered: boolean; failures: number; requeue: boolean }[] = [];
      const b = await consume(
        drainB,
        await connection.createChannel(),
        target,
        () => {
          throw new Error('fails');
        },
        {
          requeueOnError: (error, msg, failures) => {
            const requeue = requeueUpTo(1)(error, msg, failures);
            seen.push({ redelivered: msg.fields.redelivered, failures, requeue });
            return requeue;
          },
        },
      );
      while (b.stats.discarded === 0) await sleep(10);
      // The broker marked it redelivered at once: `!msg.fields.redelivered` would have dropped it here.
      expect(seen).toEqual([
        { redelivered: true, failures: 1, requeue: true },
        { redelivered: true, failures: 2, requeue: false },
      ]);
      expect(b.stats).toMatchObject({ delivered: 2, requeued: 1, discarded: 1, pending: 0 });
      await drainB.shutdown();
      await b.close();
      expect((await adminChannel.checkQueue(target)).messageCount).toBe(0);
    });
  }

  it('requeueOnError: from RabbitMQ 4.3, counts the rejects a quorum queue counted (x-delivery-count)', async () => {
    const target = uniqueName('gd_amqp_quorum');
    extraQueues.push(target);
    await adminChannel.assertQueue(target, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await publish(['target'], target);
    // Another consumer failed it once.
    let got: Awaited<ReturnType<Channel['get']>> = false;
    while (got === false) got = await adminChannel.get(target);
    adminChannel.reject(got, true);
    // This broker's header counts every return, a shutdown's too (before 4.3): pretend it is 4.3.
    const model = channel as unknown as { connection: { serverProperties: { version: string } } };
    model.connection.serverProperties.version = '4.3.0';
    const drain = await started();
    const decided = deferred<{ count: unknown; failures: number }>();
    const consumer = await consume(
      drain,
      channel,
      target,
      () => {
        throw new Error('fails');
      },
      {
        requeueOnError: (error, msg, failures) => {
          decided.resolve({ count: msg.properties.headers?.['x-delivery-count'], failures });
          return requeueUpTo(1)(error, msg, failures);
        },
      },
    );
    expect(await decided.promise).toEqual({ count: 1, failures: 2 });
    while (consumer.stats.discarded === 0) await sleep(10);
    await drain.shutdown();
    await consumer.close();
  });

  it('types: an amqplib Channel, ConfirmChannel and ConsumeMessage fit the structural types', () => {
    expectTypeOf<Channel>().toExtend<AmqpChannel>();
    expectTypeOf<ConfirmChannel>().toExtend<AmqpChannel>();
    expectTypeOf<ConsumeMessage>().toExtend<AmqpMessage>();
  });

  it('requeueUpTo() validates its count', () => {
    expect(() => requeueUpTo(-1)).toThrow(/`retries`.*a whole number from 0 up.*`-1`/);
    expect(() => requeueUpTo(1.5)).toThrow(ConfigurationError);
    expect([1, 2, 3].map((n) => requeueUpTo(2)(new Error(), {} as AmqpMessage, n))).toEqual([
      true,
      true,
      false,
    ]);
  });

  it('validates its arguments and options, naming them and the value', async () => {
    const drain = await started();
    const bad = async (options: unknown, message: RegExp): Promise<void> => {
      const attempt = consume(drain, channel, queue, () => {}, options as never);
      await expect(attempt).rejects.toThrow(ConfigurationError);
      await expect(attempt).rejects.toThrow(message);
    };
    await bad({ prefetch: 0 }, /`prefetch`.*`0` \(number\)/);
    await bad({ prefetch: 1.5 }, /`prefetch`.*`1\.5`/);
    await bad({ requeueOnError: 'yes' }, /`requeueOnError`.*a boolean or a function.*`"yes"` \(string\)/);
    await bad({ label: 'id' }, /`label`.*`"id"`/);
    await bad({ closeChannel: 1 }, /`closeChannel`.*`1` \(number\)/);
    await bad({ connection: {} }, /`connection`.*\[object\]/);
    await bad({ closeTimeoutMs: -1 }, /`closeTimeoutMs`.*`-1`/);
    await bad({ consumeOptions: { noAck: true } }, /`consumeOptions\.noAck`.*`true`/);
    await bad({ consumeOptions: 'x' }, /`consumeOptions`.*an object/);
    await bad({ prefetchCount: 5 }, /Unknown option `prefetchCount`/);
    await bad({ requeueonerror: true }, /did you mean `requeueOnError`/);
    await expect(consume(drain, channel, '', () => {})).rejects.toThrow(/`queue`.*`""`/);
    await expect(consume(drain, channel, queue, 'h' as never)).rejects.toThrow(/`handler`.*`"h"`/);
    await expect(consume(drain, {} as never, queue, () => {})).rejects.toThrow(/`channel`.*amqplib channel/);
    await expect(consume({} as never, channel, queue, () => {})).rejects.toThrow(/`drain`.*DrainController/);
    await drain.shutdown();
  });
});
