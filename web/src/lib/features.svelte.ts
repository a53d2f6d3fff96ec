/** What this platform offers beyond its own routes: single sign-on is configured per installation,
 * so the sign-in page asks `GET /api/v1/auth/oidc` and offers "Sign in with NAME" only when it is on.
 * Management (the gateway's nodes and usage per user) needs our gateway and its master key: the
 * platform says whether it has them in `GET /api/v1/auth/config`, and the admin pages for them are
 * hidden otherwise.
 * (Two-factor sign-in and API keys are always there: the typed client knows their routes.) */

import { anon } from '$lib/api/client';

export type OidcFeature = { name: string; url: string };

type OidcInfo = { enabled: boolean; name?: string | null; login_url?: string | null };

/** The sign-in button's name and address, or null when single sign-on is off. */
export function oidcFeature(info: OidcInfo | undefined): OidcFeature | null {
	if (!info?.enabled || !info.login_url) return null;
	return { name: info.name || 'single sign-on', url: info.login_url };
}

/** The provider's sign-in, coming back to `next` (a path on this site) when it is not the home page. */
export function oidcLoginUrl(feature: OidcFeature, next: string): string {
	return next && next !== '/' ? `${feature.url}?next=${encodeURIComponent(next)}` : feature.url;
}

/** What the sign-in page says when single sign-on sent the browser back with `?sso_error=CODE`: the
 * platform names a reason from a fixed list and the page words it (never words taken from the URL). */
export function oidcErrorMessage(code: string, name = 'single sign-on'): string {
	switch (code) {
		case 'state':
			return `That sign-in with ${name} expired or was started in another browser. Try again.`;
		case 'denied':
			return `${name} did not sign you in. Try again.`;
		case 'unavailable':
			return `${name} cannot be reached right now. Try again later, or sign in with your password.`;
		case 'unverified_link':
			return `An account with this e-mail address exists, and ${name} does not confirm the address is yours. Sign in with your password instead.`;
		case 'unverified':
			return `${name} does not confirm your e-mail address, so no account was made. Verify it there, or sign up with a password.`;
		case 'no_email':
			return `${name} did not share your e-mail address. Allow it there and try again.`;
		case 'closed':
			return 'Sign-up is closed: ask an administrator for an account.';
		case 'disabled':
			return 'This account is disabled: ask an administrator.';
		case 'not_configured':
			return 'Single sign-on is not set up here. Sign in with your password.';
		default:
			return `The sign-in with ${name} did not go through. Try again.`;
	}
}

/** Whether a public config answer says management is on (anything unexpected: off). */
export function managementOf(config: unknown): boolean {
	return typeof config === 'object' && config !== null && (config as { management?: unknown }).management === true;
}

class Features {
	oidc: OidcFeature | null = $state(null);
	/** The gateway's nodes and usage per user can be shown to administrators. */
	management = $state(false);
	loaded = $state(false);
	#loading: Promise<void> | null = null;

	load(): Promise<void> {
		this.#loading ??= Promise.all([this.#routes(), this.#config()]).then(() => {
			this.loaded = true;
		});
		return this.#loading;
	}

	async #routes(): Promise<void> {
		try {
			const { data } = await anon.GET('/api/v1/auth/oidc');
			this.oidc = oidcFeature(data);
		} catch {
			// offline: nothing optional is shown
		}
	}

	/** Ask again whether management is on (the gateway `avocado up` starts may come up after the
	 * platform was first asked): the admin pages do, each time they open. */
	refreshManagement(): Promise<void> {
		return this.#config();
	}

	async #config(): Promise<void> {
		try {
			const answer = await anon.GET('/api/v1/auth/config');
			this.management = answer.response.ok && managementOf(answer.data);
		} catch {
			this.management = false;
		}
	}
}

export const features = new Features();
