import { describe, expect, it } from 'vitest';
import { describe as describeLimit, fromText, toText } from './limits';

describe('limits as form text', () => {
	it('reads numbers and patterns, empty as no limit', () => {
		expect(fromText('requests_per_minute', ' 30 ')).toBe(30);
		expect(fromText('tokens_per_day', '')).toBeNull();
		expect(fromText('concurrent_requests', 'lots')).toBe('lots');
		expect(fromText('models', 'smollm2:*, gemma3:270m ,')).toEqual(['smollm2:*', 'gemma3:270m']);
		expect(fromText('models', '  ')).toBeNull();
	});

	it('shows them back', () => {
		const values = { requests_per_minute: 30, models: ['a:*', 'b'], tokens_per_day: null };
		expect(toText(values, 'requests_per_minute')).toBe('30');
		expect(toText(values, 'models')).toBe('a:*, b');
		expect(toText(values, 'tokens_per_day')).toBe('');
		expect(describeLimit(values, 'tokens_per_day')).toBe('no limit');
		expect(describeLimit({}, 'models')).toBe('every model');
	});
});
