/** What this platform offers beyond its own routes, read from its OpenAPI document at runtime: single
 * sign-on is configured per installation, so the sign-in page offers it only when the platform lists
 * its route. (Two-factor sign-in and API keys are always there: the typed client knows their routes.) */

export type OidcFeature = { name: string; url: string };

/** Which optional features the routes of an OpenAPI document's `paths` reveal. */
export function featuresOf(paths: readonly string[]): { oidc: boolean } {
	return { oidc: paths.includes('/api/v1/auth/oidc/login') };
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
			const response = await fetch('/api/v1/openapi.json');
			if (!response.ok) return;
			const document = (await response.json()) as { paths?: Record<string, unknown> };
			const found = featuresOf(Object.keys(document.paths ?? {}));
			this.oidc = found.oidc ? { name: 'single sign-on', url: '/api/v1/auth/oidc/login' } : null;
		} catch {
			// offline: nothing optional is shown
		} finally {
			this.loaded = true;
		}
	}
}

export const features = new Features();
