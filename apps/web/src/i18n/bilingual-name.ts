/**
 * What the studio ships carries a name in both languages, "中文 / English": the template set
 * ("默认模板 / Default", prompts/service.ts SHIPPED_SET) and the offline demo model (providers/service.ts).
 * A reader sees the half in their language. Names people typed are shown as typed.
 */
const BILINGUAL = /^(.*\p{Script=Han}.*?) \/ ([^\p{Script=Han}]+)$/u;

export function nameIn(name: string, locale: string): string {
  const m = BILINGUAL.exec(name);
  if (!m) return name;
  return locale.startsWith('zh') ? m[1] : m[2];
}
