/** My avatar, shown in the app shell and on the profile page. The platform serves avatars to signed-in
 * users only (GET /api/v1/users/{id}/avatar with the access token), so an `<img>` cannot fetch it by
 * itself: it is fetched here and shown from an object URL. Loaded once per signed-in user. */

import { api, call, type Avatar } from '$lib/api/client';

/** Largest image the platform takes (it answers 413 past it). */
export const MAX_AVATAR_BYTES = 512 * 1024;
/** What the platform takes, judged by the image's own bytes there. */
export const AVATAR_ACCEPT = 'image/png,image/jpeg,image/webp,image/gif';

/** A reason to refuse `file` before sending it, in words; null when it may go. */
export function avatarProblem(file: { size: number; type: string }): string | null {
	if (file.type && !AVATAR_ACCEPT.split(',').includes(file.type))
		return 'Choose a PNG, JPEG, WebP or GIF image.';
	if (file.size > MAX_AVATAR_BYTES) return `Choose an image of at most ${MAX_AVATAR_BYTES / 1024} KiB.`;
	if (file.size === 0) return 'That file is empty.';
	return null;
}

class MyAvatar {
	/** An object URL of my avatar; null when I have none (or it is still loading). */
	url: string | null = $state(null);
	#user: string | null = null;

	/** Load `user`'s avatar (once per user). */
	load(user: string): Promise<void> {
		if (this.#user === user) return Promise.resolve();
		this.#user = user;
		this.#show(null);
		return this.#fetch();
	}

	async #fetch(): Promise<void> {
		try {
			const answer = await api.GET('/api/v1/users/{user_id}/avatar', {
				params: { path: { user_id: 'me' } },
				parseAs: 'blob'
			});
			this.#show(answer.response.ok && answer.data instanceof Blob ? answer.data : null);
		} catch {
			// offline: the initial stands in
		}
	}

	/** Upload `file` as my avatar (errors reach the caller: 413, 415 in the platform's words). */
	async upload(file: File): Promise<Avatar> {
		const form = new FormData();
		form.append('file', file);
		// openapi-fetch sends a FormData body as it is (the browser sets the multipart boundary).
		const body = form as unknown as { file: string };
		const stored = await call(api.PUT('/api/v1/users/me/avatar', { body }));
		this.#show(file);
		return stored;
	}

	async remove(): Promise<void> {
		await call(api.DELETE('/api/v1/users/me/avatar'));
		this.#show(null);
	}

	#show(image: Blob | null): void {
		if (this.url) URL.revokeObjectURL(this.url);
		this.url = image ? URL.createObjectURL(image) : null;
	}
}

export const myAvatar = new MyAvatar();
