import { type AnyColumn, Param, Placeholder, type SQL, sql } from 'drizzle-orm';
import type { Db } from './client.ts';

/** What drizzle's prepared query holds besides its SQL: the result's fields, which map rows as its own `execute` does (not in its types). */
interface Built {
  getQuery(): { sql: string; params: unknown[] };
  fields?: unknown;
  joinsNotNullableMap?: Record<string, boolean>;
}

type Values = Record<string, unknown>;

/**
 * A statement of fixed shape that drizzle builds once (its values `sql.placeholder`s) and that runs on
 * any connection: the pool's, or the one a transaction holds. Drizzle builds a statement's SQL on every
 * execution — 30–100 µs for the run's updates, more than PostgreSQL takes to run them, and a run's start
 * and finish make about ten — and its `.prepare()` keeps the built statement on the session it was made
 * on, which for a transaction ends with it. The SQL, the parameters and the result's fields are the same
 * on every connection, so the statement built once is handed to the session at hand.
 *
 * A null value is sent as SQL NULL (drizzle would pass it through the column's encoder: JSON `null`).
 */
export function fixedStatement<R>(name: string, build: (db: Db) => { prepare(name: string): { execute(): Promise<R> } }) {
  let shape: { sql: string; fill: ((values: Values) => unknown)[]; fields: unknown; joins?: Record<string, boolean> } | undefined;
  return async (db: Db, values: Values = {}): Promise<R> => {
    shape ??= shapeOf(build(db).prepare(name) as unknown as Built);
    const query = db._.session.prepareQuery({ sql: shape.sql, params: shape.fill.map((f) => f(values)) }, shape.fields as never, name, true);
    (query as unknown as Built).joinsNotNullableMap = shape.joins;
    return query.execute() as Promise<R>;
  };
}

function shapeOf(built: Built) {
  const { sql, params } = built.getQuery();
  const fill = params.map((p): ((values: Values) => unknown) => {
    if (p instanceof Placeholder) return (values) => valueOf(values, p.name);
    if (p instanceof Param && p.value instanceof Placeholder) {
      const { encoder } = p;
      const placeholder = p.value.name;
      return (values) => {
        const value = valueOf(values, placeholder);
        return value === null || value === undefined ? null : encoder ? encoder.mapToDriverValue(value) : value;
      };
    }
    return () => p;
  });
  return { sql, fill, fields: built.fields, joins: built.joinsNotNullableMap };
}

function valueOf(values: Values, name: string) {
  if (!(name in values)) throw new Error(`No value for placeholder "${name}"`);
  return values[name];
}

/** An insert's values for `columns`, each given at execution under its own name. */
export const placeholders = <C extends string>(columns: readonly C[]) => Object.fromEntries(columns.map((c) => [c, sql.placeholder(c)])) as { [K in C]: Placeholder<K> };

/**
 * A value given at each execution, for an update's `set` (whose types take no placeholder): it is sent
 * as `column` sends its values (a date as its ISO text, JSON as its text).
 */
export const given = (column: AnyColumn, name: string): SQL => sql`${new Param(sql.placeholder(name), column)}`;
