import { commitBehind, type Db } from './client.ts';

/**
 * One caller's part of a shared transaction. `send` sends its statements on `tx` (awaiting only what it
 * must read first) and hands back `answer`, what they resolve to. `checked`: its statements wrote
 * something its answer may still refuse (the answer then throws, undoing the whole transaction), so the
 * COMMIT waits for it; otherwise the COMMIT goes right behind the statements (commitBehind).
 */
export type Share<T> = {
  /** The project it locks first: shares go in this order, so two shared transactions lock in one order and never deadlock. */
  projectId: string;
  send(tx: Db): Promise<{ answer: Promise<T>; checked: boolean }>;
};

/**
 * Writes that many callers make at once (run starts and endings) share transactions: while `inFlight`
 * transactions are on their way, the shares that come wait and then leave together, in one transaction
 * and one round trip. Alone on the machine a share leaves at once, in a transaction of its own; under
 * load each transaction carries more, and the database wakes, begins and commits once for them all.
 * When a shared transaction fails, every share in it goes again in a transaction of its own, so that
 * each gets its own answer: one refused start or one run recovered elsewhere fails nobody else.
 */
export class TransactionGroup {
  private readonly waiting: { share: Share<unknown>; resolve(value: unknown): void; reject(err: unknown): void }[] = [];
  private sending = 0;

  /**
   * `inFlight`: transactions on their way at once. `maxShares`: shares in one transaction at most, its
   * locks held (and on PGlite the one session, which every read waits for) while all of them run.
   */
  constructor(
    private readonly db: Pick<Db, 'transaction'>,
    private readonly inFlight = 2,
    private readonly maxShares = 64,
  ) {}

  run<T>(share: Share<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ share, resolve: resolve as (value: unknown) => void, reject });
      this.next();
    });
  }

  private next() {
    while (this.sending < this.inFlight && this.waiting.length) {
      const batch = this.waiting.splice(0, this.maxShares);
      this.sending++;
      void this.send(batch).finally(() => {
        this.sending--;
        this.next();
      });
    }
  }

  private async send(batch: TransactionGroup['waiting']) {
    if (batch.length > 1) {
      try {
        const answers = await inOneTransaction(this.db, batch.map((w) => w.share));
        batch.forEach((w, i) => w.resolve(answers[i]));
        return;
      } catch {
        // One share's failure undid them all: each goes again on its own, below.
      }
    }
    await Promise.all(batch.map((w) => inOneTransaction(this.db, [w.share]).then(([answer]) => w.resolve(answer), w.reject)));
  }
}

/** The shares' statements in one transaction, in project order, with one round trip for them all when none is checked. */
export function inOneTransaction<T>(db: Pick<Db, 'transaction'>, shares: Share<T>[]): Promise<T[]> {
  const order = shares.map((_, i) => i).sort((a, b) => compare(shares[a].projectId, shares[b].projectId));
  return db.transaction(async (tx) => {
    const sent: Awaited<ReturnType<Share<T>['send']>>[] = [];
    for (const i of order) {
      const part = await shares[i].send(tx);
      part.answer.catch(() => {}); // awaited below, after the shares sent behind it: not an unhandled rejection meanwhile
      sent[i] = part;
    }
    const answers = Promise.all(sent.map((s) => s.answer));
    return sent.some((s) => s.checked) ? answers : commitBehind(answers);
  });
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
