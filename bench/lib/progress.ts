/**
 * Progress on stderr, so stdout keeps only results. On a terminal one line is rewritten in place; in
 * a log (CI, a test) lines are printed at most once a second per suite, plus every suite's start and end.
 */
export class Progress {
  readonly #tty = process.stderr.isTTY === true;
  readonly #total: number;
  #index = 0;
  #label = '';
  #startedAt = 0;
  #lastPrint = 0;
  #dirty = false;

  constructor(total: number) {
    this.#total = total;
  }

  begin(label: string): void {
    this.#index++;
    this.#label = label;
    this.#startedAt = performance.now();
    this.#lastPrint = 0;
    this.#write('starting', true);
  }

  update(text: string): void {
    this.#write(text, false);
  }

  end(text: string): void {
    this.#write(text, true);
    if (this.#tty && this.#dirty) process.stderr.write('\n');
    this.#dirty = false;
  }

  #write(text: string, always: boolean): void {
    const t = performance.now();
    if (!this.#tty && !always && t - this.#lastPrint < 1000) return;
    this.#lastPrint = t;
    const elapsed = ((t - this.#startedAt) / 1000).toFixed(1);
    const line = `[${this.#index}/${this.#total}] ${this.#label}: ${text} (${elapsed} s)`;
    if (this.#tty) {
      const width = process.stderr.columns ?? 100;
      process.stderr.write(`\r\x1b[K${line.slice(0, width - 1)}`);
      this.#dirty = true;
    } else process.stderr.write(`${line}\n`);
  }
}
