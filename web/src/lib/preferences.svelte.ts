/** My preferences, kept by the platform (GET/PATCH /api/v1/users/me/preferences) so they follow me to
 * every browser: the theme (applied as soon as they load), the model new chats start with and the
 * system prompt. Loaded once per signed-in user. */

import { api, call, type Preferences } from '$lib/api/client';
import { applyChoice } from '$lib/theme';

type Changes = Partial<Preferences>;

class PreferenceStore {
	value: Preferences | null = $state(null);
	#user: string | null = null;
	#loading: Promise<Preferences | null> = Promise.resolve(null);

	/** Load `user`'s preferences (once) and apply the theme; null when they could not be read. */
	load(user: string): Promise<Preferences | null> {
		if (this.#user !== user) {
			this.#user = user;
			this.value = null;
			this.#loading = this.#fetch();
		}
		return this.#loading;
	}

	async #fetch(): Promise<Preferences | null> {
		try {
			this.value = await call(api.GET('/api/v1/users/me/preferences'));
			applyChoice(this.value.theme);
		} catch {
			// offline or signed out meanwhile: this browser's own theme stays
		}
		return this.value;
	}

	/** Save `changes` on the platform (errors reach the caller) and apply a new theme. */
	async save(changes: Changes): Promise<Preferences> {
		this.value = await call(api.PATCH('/api/v1/users/me/preferences', { body: changes }));
		if (changes.theme) applyChoice(this.value.theme);
		return this.value;
	}
}

export const preferences = new PreferenceStore();
