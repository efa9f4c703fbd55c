import type { FormItemRule } from 'element-plus';
import { useI18n } from 'vue-i18n';

/** Anything with zod's safeParse: the contracts' schemas decide what is valid, i18n says why not. */
interface Schema {
  safeParse(value: unknown): { success: boolean };
}

export function useRules() {
  const { t } = useI18n();

  const required = (field: string, trigger: FormItemRule['trigger'] = 'blur'): FormItemRule => ({
    required: true,
    trigger,
    validator: (_rule, value: unknown, cb) =>
      value === undefined || value === null || String(value).trim() === '' ? cb(new Error(t('validation.required', { field }))) : cb(),
  });

  /** Valid when the contract schema accepts the value (empty values are left to `required`). */
  const schema = (s: Schema, message: () => string, trigger: FormItemRule['trigger'] = 'blur'): FormItemRule => ({
    trigger,
    validator: (_rule, value: unknown, cb) => {
      if (value === undefined || value === null || value === '') return cb();
      return s.safeParse(value).success ? cb() : cb(new Error(message()));
    },
  });

  const maxLength = (n: number): FormItemRule => ({
    trigger: 'blur',
    validator: (_rule, value: unknown, cb) => (typeof value === 'string' && value.length > n ? cb(new Error(t('validation.maxLength', { n }))) : cb()),
  });

  const sameAs = (other: () => string): FormItemRule => ({
    trigger: 'blur',
    validator: (_rule, value: unknown, cb) => (value !== other() ? cb(new Error(t('validation.passwordMismatch'))) : cb()),
  });

  return { required, schema, maxLength, sameAs };
}
