/**
 * A LIKE / ILIKE pattern that matches `text` anywhere, with its own `%`, `_` and `\` taken literally
 * (backslash is PostgreSQL's default LIKE escape): a search for `a_b` must not match `axb`.
 */
export const containing = (text: string) => `%${text.replace(/[\\%_]/g, (c) => '\\' + c)}%`;
