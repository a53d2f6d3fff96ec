/** The audit log's events in words. Unknown actions (added by later platform versions) show as named. */

import type { AuditEvent } from '$lib/api/client';

export const AUDIT_ACTIONS: Record<string, string> = {
	'signin.succeeded': 'Signed in',
	'signin.failed': 'Sign-in failed',
	'signin.refused': 'Sign-in refused',
	signout: 'Signed out',
	'user.registered': 'Signed up',
	'user.created': 'Account created',
	'user.role_changed': 'Role changed',
	'user.status_changed': 'Status changed',
	'password.changed': 'Password changed',
	'password.change_failed': 'Password change failed',
	'password.reset_issued': 'Reset link issued',
	'password.reset': 'Password reset',
	'session.revoked': 'Session signed out',
	'session.revoked_all': 'Signed out everywhere',
	'session.reuse_detected': 'Stolen token suspected',
	'settings.changed': 'Setting changed',
	'oidc.linked': 'Single sign-on linked',
	'oidc.link_refused': 'Single sign-on link refused'
};

export function actionLabel(action: string): string {
	return AUDIT_ACTIONS[action] ?? action;
}

/** Events a security reviewer looks at first. */
export function isWarning(action: string): boolean {
	return /failed|refused|reuse/.test(action);
}

/** The detail of an event in one line: `old → new` for changes, `key: value` for the rest. */
export function describeDetail(event: Pick<AuditEvent, 'detail'>): string {
	const detail = event.detail;
	if (!detail) return '';
	const parts: string[] = [];
	if ('old' in detail || 'new' in detail) parts.push(`${String(detail.old ?? '—')} → ${String(detail.new ?? '—')}`);
	for (const [key, value] of Object.entries(detail)) {
		if (key === 'old' || key === 'new' || value === null || value === undefined) continue;
		parts.push(`${key.replaceAll('_', ' ')}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
	}
	return parts.join(' · ');
}
