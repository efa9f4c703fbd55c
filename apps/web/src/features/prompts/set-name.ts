/**
 * The shipped template set carries a name in both languages, "默认模板 / Default" (prompts/service.ts
 * SHIPPED_SET): a reader sees the half in their language. Names people typed are shown as typed.
 */
const BILINGUAL = /^(.*\p{Script=Han}.*?) \/ ([^\p{Script=Han}]+)$/u;

export function setNameIn(name: string, locale: string): string {
  const m = BILINGUAL.exec(name);
  if (!m) return name;
  return locale.startsWith('zh') ? m[1] : m[2];
}
