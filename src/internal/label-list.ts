/**
 * The labelled tasks in flight, in the order they started, for `track(fn, { label })`: a doubly linked
 * list kept in parallel arrays indexed by slot, its freed slots reused. Each slot has its settle
 * handlers, made once when the slot is first used (bound to the slot number), so a labelled task
 * allocates no closure, entry object or hash entry: adding and removing are a few array writes, and the
 * list is read only at shutdown. Arrays grown past {@link KEEP} slots are let go when the list empties,
 * so a burst does not hold its memory for good.
 * @internal
 */

/** No slot: the end of a chain. */
const NONE = -1;
/** Slots kept when the list empties; larger arrays are let go. */
const KEEP = 1024;

type Fulfilled = (value: unknown) => unknown;
type Rejected = (error: unknown) => never;

export class LabelList {
  /** Called after a task leaves the list (the tracker's count comes down there). */
  readonly #settled: () => void;
  /** The handlers every slot binds, `this` being the slot. */
  readonly #fulfilled: (this: number, value: unknown) => unknown;
  readonly #rejected: (this: number, error: unknown) => never;
  #labels: (string | undefined)[] = [];
  #next: number[] = [];
  #prev: number[] = [];
  #onFulfilled: Fulfilled[] = [];
  #onRejected: Rejected[] = [];
  #head = NONE;
  #tail = NONE;
  /** The first free slot; free slots are chained through `#next`. */
  #free = NONE;

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

  /** Appends `label`; returns its slot, for {@link follow} or {@link release}. */
  add(label: string): number {
    const tail = this.#tail;
    let slot = this.#free;
    if (slot === NONE) {
      slot = this.#labels.length;
      this.#labels.push(label);
      this.#next.push(NONE);
      this.#prev.push(tail);
      this.#onFulfilled.push(this.#fulfilled.bind(slot));
      this.#onRejected.push(this.#rejected.bind(slot));
    } else {
      this.#free = this.#next[slot] as number;
      this.#labels[slot] = label;
      this.#next[slot] = NONE;
      this.#prev[slot] = tail;
    }
    if (tail === NONE) this.#head = slot;
    else this.#next[tail] = slot;
    this.#tail = slot;
    return slot;
  }

  /** `promise` settled with its value or error once the task in `slot` is released. */
  follow<T>(promise: Promise<unknown>, slot: number): Promise<T> {
    return promise.then(this.#onFulfilled[slot], this.#onRejected[slot]) as Promise<T>;
  }

  /** Removes the task in `slot` (once), then tells the tracker. */
  release(slot: number): void {
    const prev = this.#prev[slot] as number;
    const next = this.#next[slot] as number;
    if (prev === NONE) this.#head = next;
    else this.#next[prev] = next;
    if (next === NONE) this.#tail = prev;
    else this.#prev[next] = prev;
    if (this.#head === NONE && this.#labels.length > KEEP) {
      this.#labels = [];
      this.#next = [];
      this.#prev = [];
      this.#onFulfilled = [];
      this.#onRejected = [];
      this.#free = NONE;
    } else {
      this.#labels[slot] = undefined;
      this.#next[slot] = this.#free;
      this.#free = slot;
    }
    this.#settled();
  }

  /** The labels, oldest first. */
  values(): string[] {
    const out: string[] = [];
    for (let slot = this.#head; slot !== NONE; slot = this.#next[slot] as number) {
      out.push(this.#labels[slot] as string);
    }
    return out;
  }
}
