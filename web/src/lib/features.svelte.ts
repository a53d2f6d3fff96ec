/** What this platform offers beyond the basics, read from its own OpenAPI document at runtime, so one
 * build of the UI works with a platform that has (or does not have yet) two-factor enrolment, API keys
 * or single sign-on: a section whose routes the platform lacks is not shown. */

export type OidcFeature = { name: string; url: string };

/** Which features the routes of an OpenAPI document's `paths` reveal. */
export function featuresOf(paths: readonly string[]): { totp: boolean; apiKeys: boolean; oidc: boolean } {
	return {
		totp: paths.some((path) => /^\/api\/v1\/users\/me\/(mfa|totp|two-factor)(\/|$)/.test(path)),
		apiKeys: paths.some((path) => /^\/api\/v1\/users\/me\/(api-keys|keys)(\/|$)/.test(path)),
		oidc: paths.includes('/api/v1/auth/oidc/login')
	};
}

class Features {
	totp = $state(false);
	apiKeys = $state(false);
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
			this.totp = found.totp;
			this.apiKeys = found.apiKeys;
			this.oidc = found.oidc ? { name: 'single sign-on', url: '/api/v1/auth/oidc/login' } : null;
		} catch {
			// offline: nothing optional is shown
		} finally {
			this.loaded = true;
		}
	}
}

export const features = new Features();
