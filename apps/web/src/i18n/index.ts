import { createI18n } from 'vue-i18n';
import en from './en.ts';
import zhCN, { type MessageSchema } from './zh-CN.ts';

export const LOCALES = ['zh-CN', 'en'] as const;
export type Locale = (typeof LOCALES)[number];

export const LOCALE_STORAGE_KEY = 'ai-story.locale';

const isLocale = (value: unknown): value is Locale => LOCALES.includes(value as Locale);

/** The saved choice first; else the browser's language (any Chinese variant gets zh-CN); else English. */
export function detectLocale(): Locale {
  try {
    const saved = localStorage.getItem(LOCALE_STORAGE_KEY);
    if (isLocale(saved)) return saved;
  } catch {
    // storage can be blocked (privacy mode); fall through to the browser language
  }
  const languages = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const lang of languages) {
    const l = lang.toLowerCase();
    if (l.startsWith('zh')) return 'zh-CN';
    if (l.startsWith('en')) return 'en';
  }
  return 'zh-CN';
}

export const i18n = createI18n<[MessageSchema], Locale, false>({
  legacy: false,
  locale: detectLocale(),
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zhCN, en },
  missingWarn: import.meta.env.DEV,
  fallbackWarn: false,
});

export function currentLocale(): Locale {
  return i18n.global.locale.value;
}

export function setLocale(locale: Locale) {
  i18n.global.locale.value = locale;
  document.documentElement.lang = locale;
  try {
    localStorage.setItem(LOCALE_STORAGE_KEY, locale);
  } catch {
    // not persisted; the choice still applies to this page
  }
}

document.documentElement.lang = i18n.global.locale.value;
