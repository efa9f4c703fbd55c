/**
 * Reads that every run start repeats (the provider list, the routing, the prompt template) shared for a short while and
 * dropped on every write made here. A write made by another instance (scale-out mode) is seen once
 * `ttlMs` has passed; a failed read is not kept, nor an expired one (keys such as a prompt set's
 * come and go with the users: the map holds only what was read in the last `ttlMs`).
 */
export class ReadCache<T> {
  private readonly entries = new Map<string, { at: number; value: Promise<T> }>();

  constructor(private readonly ttlMs: number) {}

  get(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.value;
    const value = load();
    const entry = { at: Date.now(), value };
    this.entries.set(key, entry);
    const drop = () => this.entries.get(key) === entry && this.entries.delete(key);
    value.catch(drop);
    setTimeout(drop, this.ttlMs).unref();
    return value;
  }

  clear() {
    this.entries.clear();
  }

  get size() {
    return this.entries.size;
  }
}
