import { Liquid } from 'liquidjs';

/**
 * Prompt templates are user-editable, so they render in a sandbox: no file system (include/render/
 * layout find nothing), only the data's own properties (no prototype walking), and bounded parse,
 * render and memory costs so a hostile template cannot stall the server. A user's templates render
 * in the render workers (render-pool.ts); this thread parses them, to check what they read, and
 * renders only the studio's own.
 */
export const engine = new Liquid({
  ownPropertyOnly: true,
  strictFilters: true,
  strictVariables: false,
  jsTruthy: false,
  parseLimit: 100_000,
  renderLimit: 1_000,
  // Counted in elements and characters. A worker thread's heap limit does not catch every
  // out-of-memory: `(1..9999999)` grows one 80 MB array and V8 aborts the whole process, so what
  // liquidjs counts must stay far below the worker's heap. A prompt never needs a million of anything.
  memoryLimit: 1_000_000,
  relativeReference: false,
  root: [],
  partials: [],
  layouts: [],
  fs: {
    exists: async () => false,
    existsSync: () => false,
    readFile: async () => '',
    readFileSync: () => '',
    resolve: (_root: string, file: string) => file,
  },
});

// Reading another file is never what a prompt needs; refusing these tags at parse time turns a
// template that tries into a clear error when it is saved or tested, not an empty string at run time.
for (const tag of ['include', 'render', 'layout']) {
  engine.registerTag(tag, {
    parse() {
      throw new Error(`The {% ${tag} %} tag is not available in prompt templates`);
    },
    render() {},
  });
}

/** A render's outcome; errors travel as values (an Error's class does not survive the trip between threads). */
export type RenderResult = { text: string } | { error: string; limit: 'time' | 'memory' | null };

/** A liquidjs failure as a RenderResult: its budgets say "render limit exceeded" and "memory alloc limit exceeded". */
export function failed(err: unknown): RenderResult {
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  const limit = /render limit exceeded/.test(message) ? 'time' : /alloc limit exceeded/.test(message) ? 'memory' : null;
  return { error: message, limit };
}

/** The template cannot be rendered (a bad filter argument, a syntax error): the user's to fix. */
export class TemplateError extends Error {}

/**
 * A render stopped by a limit: liquidjs's own render or memory budget, or the hard time or memory
 * limit of the render worker (which ends the worker). Answered 422, naming the template.
 */
export class TemplateLimitError extends TemplateError {
  constructor(
    message: string,
    readonly limit: 'time' | 'memory',
  ) {
    super(message);
  }
}

/**
 * Variables a template reads from its data ({{ x }}, {% if x %}, x.y → x), for "unknown variable"
 * checks; names it defines itself (assign, capture, for loop variables, forloop) are not counted.
 * Throws (a liquidjs error) when the template does not parse.
 */
export function variablesUsed(template: string): string[] {
  return engine.globalVariablesSync(template);
}
