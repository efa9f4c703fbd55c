import { reactive } from 'vue';
import { isApiError } from '@/api/client';
import { errorMessage, notify } from './useFeedback';

/**
 * Server-side field messages for a form: bind `fields[prop]` to an `el-form-item`'s `error`.
 * A validation error naming fields shows beside them; anything else becomes a toast.
 */
export function useFormErrors() {
  const fields = reactive<Record<string, string>>({});

  function clear() {
    for (const key of Object.keys(fields)) delete fields[key];
  }

  /** Returns the message shown, so callers may also put it in a form-level alert. */
  function apply(err: unknown, opts: { toast?: boolean } = {}): string {
    clear();
    if (isApiError(err) && Object.keys(err.fields).length > 0) {
      for (const [path, message] of Object.entries(err.fields)) {
        // `body.name` / `name` / `input.original_text` all land on the form item named by the last segment
        const key = path.replace(/^body\./, '');
        fields[key] = message;
        const last = key.split('.').pop();
        if (last && last !== key) fields[last] = message;
      }
      return err.message;
    }
    const message = errorMessage(err);
    if (opts.toast !== false) notify.error(message);
    return message;
  }

  return { fields, clear, apply };
}
