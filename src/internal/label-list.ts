/**
 * The labelled tasks in flight, for `track(fn, { label })`. Each task takes a {@link Slot}: a small
 * object holding its label, its place in start order and its two settle handlers, made once when the
 * slot is first needed and reused by later tasks once it is free. A labelled task so allocates no
 * closure or entry of its own: taking and freeing a slot are a few field writes and a stack push or
 * pop, and the list is read (sorted by start) only at shutdown. Once there are more than {@link KEEP}
 * slots, all of them are let go when the list empties, so a burst does not hold its memory for good.
 * @internal
 */

/** The most slots kept when the list empties: past it, every slot is let go (a burst's, made again when needed). */
const KEEP = 1024;

/** One labelled task's place in the list, reused by a later task once the task is released. */
export interface Slot {
  /** The task's label; `undefined` while the slot is free. */
  label: string | undefined;
  /** When the task started, as a count of calls to `add()`: orders {@link LabelList.values}. */
  started: number;
  /** The handlers that release this slot when the task's promise settles. */
  readonly fulfilled: (value: unknown) => unknown;
  readonly rejected: (error: unknown) => never;
}

export class LabelList {
  /** Called after a task leaves the list (the tracker's count comes down there). */
  readonly #settled: () => void;
  /** Every slot made and kept, free or not. */
  #slots: Slot[] = [];
  /** The free slots, the last freed on top (a task at a time keeps reusing one). */
  #free: Slot[] = [];
  /** Slots holding a task. */
  #held = 0;
  /** Tasks added so far: the next one's `started`. */
  #added = 0;

  /** The handlers every slot binds, `this` being the slot. */
  readonly #fulfilled: (this: Slot, value: unknown) => unknown;
  readonly #rejected: (this: Slot, error: unknown) => never;

  constructor(settled: () => void) {
    this.#settled = settled;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the handlers' `this` is their slot
    const list = this;
    this.#fulfilled = function (value) {
      list.release(this);
      return value;
    };
    this.#rejected = function (error) {
      list.release(this);
      throw error;
    };
  }

  /** Takes a slot for a task labelled `label`, for {@link follow} or {@link release}. */
  add(label: string): Slot {
    const slot = this.#free.pop() ?? this.#make();
    slot.label = label;
    slot.started = this.#added++;
    this.#held++;
    return slot;
  }

  /** `promise` settled with its value or error once the task in `slot` is released. */
  follow<T>(promise: Promise<unknown>, slot: Slot): Promise<T> {
    return promise.then(slot.fulfilled, slot.rejected) as Promise<T>;
  }

  /** Frees `slot` (once per {@link add}), then tells the tracker. */
  release(slot: Slot): void {
    slot.label = undefined;
    if (--this.#held === 0 && this.#slots.length > KEEP) {
      this.#slots = [];
      this.#free = [];
    } else {
      this.#free.push(slot);
    }
    this.#settled();
  }

  /** The labels, oldest first. */
  values(): string[] {
    const held: Slot[] = [];
    for (const slot of this.#slots) if (slot.label !== undefined) held.push(slot);
    held.sort((a, b) => a.started - b.started);
    return held.map((slot) => slot.label as string);
  }

  #make(): Slot {
    const slot: Slot = {
      label: undefined,
      started: 0,
      fulfilled: this.#fulfilled,
      rejected: this.#rejected,
    };
    // Bound, not closures: a bound function is smaller than a closure and the context it would capture.
    (slot as { fulfilled: Slot['fulfilled'] }).fulfilled = this.#fulfilled.bind(slot);
    (slot as { rejected: Slot['rejected'] }).rejected = this.#rejected.bind(slot);
    this.#slots.push(slot);
    return slot;
  }
}
