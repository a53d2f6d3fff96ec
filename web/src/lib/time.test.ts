import { describe, expect, it } from 'vitest';
import { dayGroup, groupByDay, relativeTime } from './time';

const now = new Date(2026, 11, 7, 15, 30); // 7 December 2026, 15:30 local time

describe('relativeTime', () => {
	it('says just now for the last few seconds', () => {
		expect(relativeTime(new Date(now.getTime() - 10_000), now)).toBe('just now');
	});

	it('uses the largest whole unit', () => {
		expect(relativeTime(new Date(now.getTime() - 5 * 60_000), now)).toBe('5 minutes ago');
		expect(relativeTime(new Date(now.getTime() - 3 * 3600_000), now)).toBe('3 hours ago');
		expect(relativeTime(new Date(now.getTime() - 24 * 3600_000), now)).toBe('yesterday');
		expect(relativeTime(new Date(now.getTime() + 2 * 3600_000), now)).toBe('in 2 hours');
	});

	it('takes ISO strings, as the API sends them', () => {
		expect(relativeTime(new Date(now.getTime() - 120_000).toISOString(), now)).toBe('2 minutes ago');
	});
});

describe('dayGroup', () => {
	it('groups by calendar day, not by 24-hour spans', () => {
		expect(dayGroup(new Date(2026, 11, 7, 0, 5), now)).toBe('Today');
		expect(dayGroup(new Date(2026, 11, 6, 23, 55), now)).toBe('Yesterday');
		expect(dayGroup(new Date(2026, 11, 1, 12), now)).toBe('Previous 7 days');
		expect(dayGroup(new Date(2026, 10, 29, 12), now)).toBe('Older');
	});

	it('counts a time in the future (a clock ahead) as today', () => {
		expect(dayGroup(new Date(2026, 11, 8, 1), now)).toBe('Today');
	});
});

describe('groupByDay', () => {
	it('keeps group order and item order, leaving out empty groups', () => {
		const items = [
			{ id: 'a', at: new Date(2026, 11, 7, 9) },
			{ id: 'b', at: new Date(2026, 10, 1) },
			{ id: 'c', at: new Date(2026, 11, 7, 8) },
			{ id: 'd', at: new Date(2026, 11, 6, 8) }
		];
		const groups = groupByDay(items, (item) => item.at, now);
		expect(groups.map((group) => [group.group, group.items.map((item) => item.id)])).toEqual([
			['Today', ['a', 'c']],
			['Yesterday', ['d']],
			['Older', ['b']]
		]);
	});
});
