/** Dates as people read them: "3 minutes ago", and lists grouped by Today / Yesterday / ... */

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
	['year', 365 * 24 * 3600],
	['month', 30 * 24 * 3600],
	['week', 7 * 24 * 3600],
	['day', 24 * 3600],
	['hour', 3600],
	['minute', 60]
];

export function relativeTime(when: Date | string, now: Date = new Date(), locale = 'en'): string {
	const date = typeof when === 'string' ? new Date(when) : when;
	const seconds = (date.getTime() - now.getTime()) / 1000;
	if (Math.abs(seconds) < 45) return 'just now';
	const format = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' });
	for (const [unit, size] of UNITS) {
		if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
	}
	return format.format(Math.round(seconds / 60), 'minute');
}

export function dateTime(when: Date | string, locale?: string): string {
	const date = typeof when === 'string' ? new Date(when) : when;
	return date.toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' });
}

export type DayGroup = 'Today' | 'Yesterday' | 'Previous 7 days' | 'Older';
export const DAY_GROUPS: readonly DayGroup[] = ['Today', 'Yesterday', 'Previous 7 days', 'Older'];

function startOfDay(date: Date): number {
	return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

/** Which sidebar group a time falls in, by the calendar days of the local time zone. */
export function dayGroup(when: Date | string, now: Date = new Date()): DayGroup {
	const date = typeof when === 'string' ? new Date(when) : when;
	const days = Math.round((startOfDay(now) - startOfDay(date)) / (24 * 3600 * 1000));
	if (days <= 0) return 'Today';
	if (days === 1) return 'Yesterday';
	if (days <= 7) return 'Previous 7 days';
	return 'Older';
}

/** Items in their day groups, in group order, keeping the items' order within each group. */
export function groupByDay<T>(
	items: readonly T[],
	timeOf: (item: T) => Date | string,
	now: Date = new Date()
): { group: DayGroup; items: T[] }[] {
	const groups = new Map<DayGroup, T[]>();
	for (const item of items) {
		const group = dayGroup(timeOf(item), now);
		const bucket = groups.get(group) ?? [];
		bucket.push(item);
		groups.set(group, bucket);
	}
	return DAY_GROUPS.filter((group) => groups.has(group)).map((group) => ({
		group,
		items: groups.get(group)!
	}));
}
