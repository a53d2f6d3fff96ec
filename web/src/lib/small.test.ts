import { describe, expect, it } from 'vitest';
import type { Model } from './api/client';
import { actionLabel, describeDetail, isWarning } from './audit';
import { readCookie } from './auth.svelte';
import { avatarProblem, MAX_AVATAR_BYTES } from './avatar.svelte';
import { managementOf, oidcErrorMessage, oidcFeature, oidcLoginUrl } from './features.svelte';
import { curlExample, groupSecret } from './keys';
import { formatBytes, modelDetails, pickModel } from './models';
import { safeNext, signInFor } from './navigation';
import { shortcutOf } from './shortcuts';
import { parseChoice, resolveTheme } from './theme';

const keys = { key: '', ctrlKey: false, metaKey: false, shiftKey: false, altKey: false };

describe('shortcuts', () => {
	it('knows Ctrl/Cmd+K, Ctrl/Cmd+Shift+O and Ctrl/Cmd+Shift+S', () => {
		expect(shortcutOf({ ...keys, key: 'k', ctrlKey: true })).toBe('search');
		expect(shortcutOf({ ...keys, key: 'k', metaKey: true })).toBe('search');
		expect(shortcutOf({ ...keys, key: 'O', ctrlKey: true, shiftKey: true })).toBe('new-chat');
		expect(shortcutOf({ ...keys, key: 'S', metaKey: true, shiftKey: true })).toBe('toggle-sidebar');
	});

	it('ignores plain typing and other combinations', () => {
		expect(shortcutOf({ ...keys, key: 'k' })).toBeNull();
		expect(shortcutOf({ ...keys, key: 'o', ctrlKey: true })).toBeNull();
		expect(shortcutOf({ ...keys, key: 'k', ctrlKey: true, altKey: true })).toBeNull();
	});
});

describe('safeNext', () => {
	it('allows paths of this site only', () => {
		expect(safeNext('/c/123?x=1')).toBe('/c/123?x=1');
		expect(safeNext('https://evil.example/')).toBe('/');
		expect(safeNext('//evil.example/')).toBe('/');
		expect(safeNext('/\\evil.example/')).toBe('/');
		expect(safeNext(null)).toBe('/');
	});

	it('builds the sign-in address that comes back', () => {
		expect(signInFor('/')).toBe('/signin');
		expect(signInFor('/admin/users?status=pending')).toBe('/signin?next=%2Fadmin%2Fusers%3Fstatus%3Dpending');
	});
});

describe('theme', () => {
	it('follows the system unless a theme was picked', () => {
		expect(resolveTheme('system', true)).toBe('dark');
		expect(resolveTheme('system', false)).toBe('light');
		expect(resolveTheme('light', true)).toBe('light');
		expect(resolveTheme('dark', false)).toBe('dark');
	});

	it('reads anything unknown as system', () => {
		expect(parseChoice('dark')).toBe('dark');
		expect(parseChoice('purple')).toBe('system');
		expect(parseChoice(null)).toBe('system');
	});
});

describe('models', () => {
	const model = (name: string, details: Partial<Model['details']> = {}, size: number | null = null): Model => ({
		name,
		size,
		details: { family: null, parameter_size: null, quantization_level: null, format: null, ...details }
	});

	it('keeps the remembered model while it is offered', () => {
		const models = [model('a'), model('b')];
		expect(pickModel(models, 'b')).toBe('b');
		expect(pickModel(models, 'gone')).toBe('a');
		expect(pickModel([], 'b')).toBeNull();
		expect(pickModel(models, 'gone', 'b')).toBe('b');
		expect(pickModel(models, null, undefined)).toBe('a');
	});

	it('describes a model by what the server reports', () => {
		expect(modelDetails(model('a', { parameter_size: '135M', quantization_level: 'Q4_1' }))).toBe('135M · Q4_1');
		expect(modelDetails(model('a'))).toBe('');
		expect(formatBytes(98_123_456)).toBe('98.1 MB');
		expect(formatBytes(253_114_012)).toBe('253 MB');
		expect(formatBytes(512)).toBe('512 B');
		expect(formatBytes(null)).toBe('');
	});
});

describe('audit', () => {
	it('names known actions and keeps unknown ones', () => {
		expect(actionLabel('signin.failed')).toBe('Sign-in failed');
		expect(actionLabel('tools.created')).toBe('tools.created');
		expect(isWarning('session.reuse_detected')).toBe(true);
		expect(isWarning('signin.succeeded')).toBe(false);
	});

	it('describes changes as old → new', () => {
		expect(describeDetail({ detail: { old: 'user', new: 'admin' } })).toBe('user → admin');
		expect(describeDetail({ detail: { email: 'x@example.com', session_id: 's1' } })).toBe('email: x@example.com · session id: s1');
		expect(describeDetail({ detail: null })).toBe('');
	});
});

describe('features', () => {
	it('offers single sign-on only when the platform says it is on', () => {
		expect(oidcFeature({ enabled: false, name: null, login_url: null })).toBeNull();
		expect(oidcFeature(undefined)).toBeNull();
		expect(oidcFeature({ enabled: true, name: 'Keycloak', login_url: '/api/v1/auth/oidc/login' })).toEqual({
			name: 'Keycloak',
			url: '/api/v1/auth/oidc/login'
		});
	});
	it('words the reason single sign-on failed itself', () => {
		expect(oidcErrorMessage('state', 'Keycloak')).toMatch(/expired or was started in another browser/);
		expect(oidcErrorMessage('unverified_link', 'Keycloak')).toMatch(/Keycloak does not confirm/);
		expect(oidcErrorMessage('<b>call 555</b>', 'Keycloak')).toBe('The sign-in with Keycloak did not go through. Try again.');
	});
	it('comes back to the page the user was going to', () => {
		const sso = { name: 'Keycloak', url: '/api/v1/auth/oidc/login' };
		expect(oidcLoginUrl(sso, '/')).toBe('/api/v1/auth/oidc/login');
		expect(oidcLoginUrl(sso, '/settings/sessions')).toBe('/api/v1/auth/oidc/login?next=%2Fsettings%2Fsessions');
	});
	it('shows management only when the platform says it is on', () => {
		expect(managementOf({ signup_policy: 'approval', mfa: true, management: true })).toBe(true);
		expect(managementOf({ signup_policy: 'approval', mfa: true, management: false })).toBe(false);
		expect(managementOf({ management: 'yes' })).toBe(false);
		expect(managementOf(null)).toBe(false);
		expect(managementOf(undefined)).toBe(false);
	});
});

describe('avatarProblem', () => {
	it('takes the images the platform takes, up to its size', () => {
		expect(avatarProblem({ size: 1000, type: 'image/png' })).toBeNull();
		expect(avatarProblem({ size: MAX_AVATAR_BYTES, type: 'image/webp' })).toBeNull();
		expect(avatarProblem({ size: 1000, type: '' })).toBeNull(); // no claim: the platform reads the bytes
		expect(avatarProblem({ size: 1000, type: 'image/svg+xml' })).toMatch(/PNG, JPEG, WebP or GIF/);
		expect(avatarProblem({ size: MAX_AVATAR_BYTES + 1, type: 'image/jpeg' })).toMatch(/512 KiB/);
		expect(avatarProblem({ size: 0, type: 'image/gif' })).toMatch(/empty/);
	});
});

describe('readCookie', () => {
	it('finds a cookie among others and decodes it', () => {
		expect(readCookie('a=1; avocado_csrf=x%2Fy=z; b=2', 'avocado_csrf')).toBe('x/y=z');
		expect(readCookie('a=1', 'avocado_csrf')).toBeNull();
		expect(readCookie('', 'avocado_csrf')).toBeNull();
	});
});

describe('key and secret helpers', () => {
	it('groups a TOTP secret by four', () => {
		expect(groupSecret('JBSWY3DPEHPK3PXP')).toBe('JBSW Y3DP EHPK 3PXP');
		expect(groupSecret('JBS WY3')).toBe('JBSW Y3');
	});

	it('writes a curl call against the OpenAI-compatible API', () => {
		const example = curlExample('http://127.0.0.1:8080', 'avk_123', 'smollm2:135m');
		expect(example).toContain('http://127.0.0.1:8080/v1/chat/completions');
		expect(example).toContain('Bearer avk_123');
		expect(example).toContain('"model":"smollm2:135m"');
	});
});
