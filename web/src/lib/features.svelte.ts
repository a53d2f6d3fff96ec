/** What this platform offers beyond its own routes. Single sign-on is configured per installation, so
 * the sign-in page offers it only when the platform's OpenAPI document lists its route. Management
 * (the gateway's nodes and usage per user) needs our gateway and its master key: the platform says
 * whether it has them in `GET /api/v1/auth/config`, and the admin pages for them are hidden otherwise.
 * (Two-factor sign-in and API keys are always there: the typed client knows their routes.) */

import { anon } from '$lib/api/client';

export type OidcFeature = { name: string; url: string };

/** Which optional features the routes of an OpenAPI document's `paths` reveal. */
export function featuresOf(paths: readonly string[]): { oidc: boolean } {
	return { oidc: paths.includes('/api/v1/auth/oidc/login') };
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
			const response = await fetch('/api/v1/openapi.json');
			if (!response.ok) return;
			const document = (await response.json()) as { paths?: Record<string, unknown> };
			const found = featuresOf(Object.keys(document.paths ?? {}));
			this.oidc = found.oidc ? { name: 'single sign-on', url: '/api/v1/auth/oidc/login' } : null;
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
