/** One keyset-paged list (`{items, next_cursor}`, the platform's convention for every list): load a page
 * at a time, keep what was loaded, and allow optimistic edits of the loaded rows. */

export type Page<T> = { items: T[]; next_cursor: string | null };
export type PageLoader<T> = (cursor: string | null) => Promise<Page<T>>;

export class Pager<T> {
	items: T[] = $state([]);
	loading = $state(false);
	done = $state(false);
	error: unknown = $state(null);
	#cursor: string | null = null;
	#generation = 0;
	#load: PageLoader<T>;
	#key: ((item: T) => unknown) | null;

	/** `key`: rows already here (added by hand meanwhile) are not repeated when their page arrives. */
	constructor(load: PageLoader<T>, key: ((item: T) => unknown) | null = null) {
		this.#load = load;
		this.#key = key;
	}

	/** Load the next page (nothing while one is loading or when the last one was loaded). */
	async more(): Promise<void> {
		if (this.loading || this.done) return;
		const generation = this.#generation;
		this.loading = true;
		this.error = null;
		try {
			const page = await this.#load(this.#cursor);
			if (generation !== this.#generation) return; // reset meanwhile: this page is stale
			const key = this.#key;
			const known = key ? new Set(this.items.map(key)) : null;
			const fresh = known && key ? page.items.filter((item) => !known.has(key(item))) : page.items;
			this.items = [...this.items, ...fresh];
			this.#cursor = page.next_cursor;
			this.done = page.next_cursor === null;
		} catch (error) {
			if (generation === this.#generation) this.error = error;
		} finally {
			if (generation === this.#generation) this.loading = false;
		}
	}

	/** Start again from the first page (a filter changed, or the list changed elsewhere). */
	async reset(load?: PageLoader<T>): Promise<void> {
		if (load) this.#load = load;
		this.#generation += 1;
		this.items = [];
		this.#cursor = null;
		this.done = false;
		this.loading = false;
		this.error = null;
		await this.more();
	}

	update(match: (item: T) => boolean, change: (item: T) => T): void {
		this.items = this.items.map((item) => (match(item) ? change(item) : item));
	}

	remove(match: (item: T) => boolean): void {
		this.items = this.items.filter((item) => !match(item));
	}
}
