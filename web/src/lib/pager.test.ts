import { describe, expect, it } from 'vitest';
import { Pager, type Page } from './pager.svelte';

function pages(...all: Page<number>[]) {
	const asked: (string | null)[] = [];
	const load = async (cursor: string | null) => {
		asked.push(cursor);
		return all[cursor === null ? 0 : Number(cursor)]!;
	};
	return { asked, load };
}

describe('Pager', () => {
	it('loads page after page with the cursor it was given, then stops', async () => {
		const { asked, load } = pages({ items: [1, 2], next_cursor: '1' }, { items: [3], next_cursor: null });
		const pager = new Pager(load);
		await pager.more();
		expect(pager.items).toEqual([1, 2]);
		expect(pager.done).toBe(false);
		await pager.more();
		await pager.more();
		expect(pager.items).toEqual([1, 2, 3]);
		expect(pager.done).toBe(true);
		expect(asked).toEqual([null, '1']);
	});

	it('asks once while a page is loading', async () => {
		const { asked, load } = pages({ items: [1], next_cursor: null });
		const pager = new Pager(load);
		await Promise.all([pager.more(), pager.more(), pager.more()]);
		expect(asked).toEqual([null]);
	});

	it('keeps the error and loads again when asked', async () => {
		let fail = true;
		const pager = new Pager<number>(async () => {
			if (fail) throw new Error('offline');
			return { items: [7], next_cursor: null };
		});
		await pager.more();
		expect(pager.error).toBeInstanceOf(Error);
		expect(pager.loading).toBe(false);
		fail = false;
		await pager.more();
		expect(pager.error).toBeNull();
		expect(pager.items).toEqual([7]);
	});

	it('drops a page that arrives after a reset', async () => {
		let release: (page: Page<number>) => void = () => {};
		const slow = () => new Promise<Page<number>>((resolve) => (release = resolve));
		const pager = new Pager<number>(slow);
		const first = pager.more();
		const reset = pager.reset(async () => ({ items: [10], next_cursor: null }));
		release({ items: [1], next_cursor: null });
		await Promise.all([first, reset]);
		expect(pager.items).toEqual([10]);
	});

	it('edits and removes loaded rows', async () => {
		const { load } = pages({ items: [1, 2, 3], next_cursor: null });
		const pager = new Pager(load);
		await pager.more();
		pager.update((item) => item === 2, () => 20);
		pager.remove((item) => item === 3);
		expect(pager.items).toEqual([1, 20]);
	});

	it('does not repeat a row added by hand before its page arrives', async () => {
		const { load } = pages({ items: [1, 2], next_cursor: '1' }, { items: [3, 4], next_cursor: null });
		const pager = new Pager(load, (item) => item);
		await pager.more();
		pager.items = [...pager.items, 3];
		await pager.more();
		expect(pager.items).toEqual([1, 2, 3, 4]);
	});
});
