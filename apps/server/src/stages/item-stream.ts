import { JSONParser } from '@streamparser/json';
import { completedItems } from './json-output.ts';

/**
 * The items of a structured answer (`{"shots":[…]}`) as they complete, read incrementally: each
 * delta is parsed once, so a long answer costs linear time (re-mending the whole text on every flush
 * was quadratic). Models put prose or a ```json fence before the object: reading starts at the first
 * bracket. Malformed JSON (trailing commas, comments …) stops the incremental reader; from then on the
 * mended-text reading takes over, which is slower but only for answers that need mending anyway.
 */
export class StreamedItems {
  private parser?: JSONParser;
  private started = false;
  private broken = false;
  private text = '';
  private readonly found: unknown[] = [];

  constructor(private readonly key: string) {}

  /** Feeds the next piece of the answer; answers every item complete so far (a growing list). */
  write(delta: string): unknown[] {
    this.text += delta;
    if (this.broken) return this.mended();
    let piece = delta;
    if (!this.started) {
      const start = this.text.search(/[[{]/);
      if (start < 0) return this.found;
      piece = this.text.slice(start);
      this.started = true;
      // A bare list is accepted too (parseOutput takes `[…]` as the items).
      const path = this.text[start] === '[' ? '$.*' : `$.${this.key}.*`;
      this.parser = new JSONParser({ paths: [path], keepStack: false });
      this.parser.onValue = ({ value }) => void this.found.push(value);
      this.parser.onError = () => {
        this.broken = true;
      };
    }
    if (this.parser!.isEnded) return this.found; // prose or a closing fence after the object
    try {
      this.parser!.write(piece);
    } catch {
      this.broken = true;
    }
    return this.broken ? this.mended() : this.found;
  }

  private mended(): unknown[] {
    const mended = completedItems(this.text, this.key);
    return mended.length > this.found.length ? mended : this.found;
  }
}
