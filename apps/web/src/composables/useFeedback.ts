// Element Plus's imperative services are not templates, so the component resolver cannot see them:
// import them and their styles here, once.
import { ElMessage, ElMessageBox } from 'element-plus';
import 'element-plus/es/components/message/style/css';
import 'element-plus/es/components/message-box/style/css';
import { isApiError } from '@/api/client';
import { i18n } from '@/i18n';

const t = (key: string, values?: Record<string, unknown>) => (values ? i18n.global.t(key, values) : i18n.global.t(key));

/** A sentence for the user from any error: the server's own message for the codes that carry one. */
export function errorMessage(err: unknown): string {
  if (isApiError(err)) {
    switch (err.code) {
      case 'network_error':
        return t('common.networkError');
      case 'forbidden':
        return err.message && err.message !== 'Forbidden' ? err.message : t('common.forbidden');
      case 'not_found':
        return t('common.notFound');
      case 'rate_limited':
        return t('common.rateLimited');
      case 'internal_error':
        return t('common.unknownError');
      default:
        return err.message || t('common.unknownError');
    }
  }
  return t('common.unknownError');
}

export const notify = {
  success: (message: string) => ElMessage({ type: 'success', message, grouping: true }),
  info: (message: string) => ElMessage({ type: 'info', message, grouping: true }),
  warning: (message: string) => ElMessage({ type: 'warning', message, grouping: true }),
  error: (err: unknown) => ElMessage({ type: 'error', message: typeof err === 'string' ? err : errorMessage(err), grouping: true, duration: 5000 }),
};

/** Resolves true when the user confirms a destructive action. */
export async function confirmDanger(title: string, message: string, confirmText?: string): Promise<boolean> {
  try {
    await ElMessageBox.confirm(message, title, {
      type: 'warning',
      confirmButtonText: confirmText ?? t('common.delete'),
      cancelButtonText: t('common.cancel'),
      confirmButtonClass: 'el-button--danger',
      autofocus: false,
    });
    return true;
  } catch {
    return false;
  }
}

export async function confirmAction(title: string, message: string, confirmText?: string): Promise<boolean> {
  try {
    await ElMessageBox.confirm(message, title, {
      type: 'info',
      confirmButtonText: confirmText ?? t('common.confirm'),
      cancelButtonText: t('common.cancel'),
    });
    return true;
  } catch {
    return false;
  }
}

export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    notify.success(t('common.copied'));
    return true;
  } catch {
    // navigator.clipboard needs a secure context; fall back to a hidden textarea
    const el = document.createElement('textarea');
    el.value = text;
    el.setAttribute('readonly', '');
    el.style.position = 'fixed';
    el.style.opacity = '0';
    document.body.appendChild(el);
    el.select();
    const ok = document.execCommand('copy');
    el.remove();
    if (ok) notify.success(t('common.copied'));
    else notify.warning(t('common.copyFailed'));
    return ok;
  }
}
