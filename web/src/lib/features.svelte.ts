/** What this platform offers beyond its own routes: single sign-on is configured per installation,
 * so the sign-in page asks `GET /api/v1/auth/oidc` and offers "Sign in with NAME" only when it is on.
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

class Features {
	oidc: OidcFeature | null = $state(null);
	loaded = $state(false);
	#loading: Promise<void> | null = null;

	load(): Promise<void> {
		this.#loading ??= this.#fetch();
		return this.#loading;
	}

	async #fetch(): Promise<void> {
		try {
			const { data } = await anon.GET('/api/v1/auth/oidc');
			this.oidc = oidcFeature(data);
		} catch {
			// offline: nothing optional is shown
		} finally {
			this.loaded = true;
		}
	}
}

export const features = new Features();
