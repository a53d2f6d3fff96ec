import { describe, expect, it } from 'vitest';
import { storageLocked } from './auth.svelte';

class MemoryStorage implements Storage {
	#items = new Map<string, string>();
	get length() {
		return this.#items.size;
	}
	clear() {
		this.#items.clear();
	}
	getItem(key: string) {
		return this.#items.get(key) ?? null;
	}
	key(index: number) {
		return [...this.#items.keys()][index] ?? null;
	}
	removeItem(key: string) {
		this.#items.delete(key);
	}
	setItem(key: string, value: string) {
		this.#items.set(key, value);
	}
}

describe('storageLocked (tabs taking turns without Web Locks)', () => {
	it('never runs two holders at once, and runs every one', async () => {
		const storage = new MemoryStorage();
		let inside = 0;
		let most = 0;
		const done: number[] = [];
		const work = (n: number) => async () => {
			inside += 1;
			most = Math.max(most, inside);
			await new Promise((resolve) => setTimeout(resolve, 20));
			inside -= 1;
			done.push(n);
			return n;
		};
		const results = await Promise.all([1, 2, 3].map((n) => storageLocked(work(n), storage)));
		expect(results).toEqual([1, 2, 3]);
		expect(most).toBe(1);
		expect(done.sort()).toEqual([1, 2, 3]);
		expect(storage.length).toBe(0); // released
	});

	it('takes over a claim that lapsed (a tab closed mid-refresh)', async () => {
		const storage = new MemoryStorage();
		storage.setItem('avocado.refresh', JSON.stringify({ id: 'gone', until: Date.now() - 1 }));
		expect(await storageLocked(async () => 'ran', storage)).toBe('ran');
	});

	it('releases the lock when the work fails', async () => {
		const storage = new MemoryStorage();
		await expect(storageLocked(async () => Promise.reject(new Error('offline')), storage)).rejects.toThrow('offline');
		expect(storage.length).toBe(0);
	});
});
