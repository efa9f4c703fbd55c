import { commitBehind, isConnectionError, type Db } from './client.ts';

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
    return this.runTogether<[T]>([share])[0];
  }

  /**
   * Shares made at one moment (a run's ending and its call's usage row) that leave in one transaction
   * even when the group is idle. Each is answered on its own, and fails on its own: a failed shared
   * transaction sends each again alone.
   */
  runTogether<T extends unknown[]>(shares: { [K in keyof T]: Share<T[K]> }): { [K in keyof T]: Promise<T[K]> } {
    const answers = shares.map((share: Share<unknown>) => new Promise((resolve, reject) => this.waiting.push({ share, resolve, reject })));
    this.next();
    return answers as { [K in keyof T]: Promise<T[K]> };
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
        const answers = await settledInOneTransaction(this.db, batch.map((w) => w.share));
        batch.forEach((w, i) => {
          const answer = answers[i];
          if (answer.status === 'fulfilled') w.resolve(answer.value);
          else w.reject(answer.reason);
        });
        return;
      } catch {
        // One share's failure undid them all: each goes again on its own, below.
      }
    }
    await Promise.all(batch.map((w) => inOneTransaction(this.db, [w.share]).then(([answer]) => w.resolve(answer), w.reject)));
  }
}

/** The shares' statements in one transaction, in project order, with one round trip for them all when none is checked. */
export async function inOneTransaction<T>(db: Pick<Db, 'transaction'>, shares: Share<T>[]): Promise<T[]> {
  return (await settledInOneTransaction(db, shares)).map((answer) => {
    if (answer.status === 'rejected') throw answer.reason;
    return answer.value;
  });
}

/**
 * inOneTransaction, each share's answer settled on its own. A share that is not checked promises that
 * its answer refuses nothing the database took: when its answer fails though its statements did not
 * (the COMMIT went behind them), what it wrote is saved, and only that share is answered the failure.
 * The transaction fails when the database refused a statement, or a checked share refused: then with
 * the refusing share's own error.
 */
async function settledInOneTransaction<T>(db: Pick<Db, 'transaction'>, shares: Share<T>[]): Promise<PromiseSettledResult<T>[]> {
  const order = shares.map((_, i) => i).sort((a, b) => compare(shares[a].projectId, shares[b].projectId));
  let answers: Promise<PromiseSettledResult<T>[]> | undefined;
  try {
    return await db.transaction(async (tx) => {
      const sent: Awaited<ReturnType<Share<T>['send']>>[] = [];
      for (const i of order) {
        const part = await shares[i].send(tx);
        part.answer.catch(() => {}); // settled below, after the shares sent behind it: not an unhandled rejection meanwhile
        sent[i] = part;
      }
      answers = Promise.allSettled(sent.map((s) => s.answer));
      if (!sent.some((s) => s.checked)) return commitBehind(answers);
      await Promise.all(sent.map((s) => s.answer)); // a checked share's refusal undoes them all
      return answers;
    });
  } catch (err) {
    // Statements queued on a connection that closed are never answered (porsager/postgres#1186): the
    // answers would never settle, and the connection's error is every share's error.
    if (isConnectionError(err)) throw err;
    const refused = (await answers)?.find((a) => a.status === 'rejected');
    throw refused ? refused.reason : err;
  }
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
