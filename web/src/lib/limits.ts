/** Limits as a form shows them: each number as text (empty: no limit), the model patterns as one
 * comma-separated line (empty: every model). */

import type { Schemas } from '$lib/api/client';

export type LimitValues = Schemas['LimitValues'];
export type LimitField = keyof LimitValues;

export const LIMIT_FIELDS: { field: LimitField; label: string; hint: string }[] = [
	{ field: 'requests_per_minute', label: 'Requests per minute', hint: 'Empty: no limit.' },
	{ field: 'concurrent_requests', label: 'Requests at once', hint: 'Empty: no limit.' },
	{ field: 'tokens_per_day', label: 'Tokens per day', hint: 'Prompt and answer tokens, counted per UTC day. Empty: no limit.' },
	{ field: 'models', label: 'Visible models', hint: 'Patterns separated by commas, such as smollm2:*, gemma3:270m. Empty: every model.' }
];

export function toText(values: LimitValues, field: LimitField): string {
	const value = values[field];
	if (value === null || value === undefined) return '';
	return Array.isArray(value) ? value.join(', ') : String(value);
}

/** The value a field's text stands for; text that is not a whole number goes as it is (the platform names the field). */
export function fromText(field: LimitField, text: string): unknown {
	const trimmed = text.trim();
	if (field === 'models') {
		return trimmed ? trimmed.split(',').map((part) => part.trim()).filter(Boolean) : null;
	}
	if (!trimmed) return null;
	return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

/** `"none"` for no limit, the patterns or the number otherwise. */
export function describe(values: LimitValues, field: LimitField): string {
	const text = toText(values, field);
	if (text) return text;
	return field === 'models' ? 'every model' : 'no limit';
}
