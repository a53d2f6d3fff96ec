import { describe, expect, it } from 'vitest';
import { ended, finished, localMessage, turnsFor, withAnswer, withMine } from './temporary';
import { applyDelta, EMPTY, generating } from './thread';

describe('a temporary chat', () => {
	it('keeps the turns here and sends them all with each new message', () => {
		let thread = withMine(EMPTY, 'm1', 'Hello');
		expect(thread.path.map((m) => [m.role, m.status])).toEqual([['user', 'done']]);
		thread = withAnswer(thread, 'temporary-1', 'smollm2:135m');
		expect(generating(thread).map((m) => m.id)).toEqual(['temporary-1']);
		thread = applyDelta(thread, 'temporary-1', 'Hi!');
		const answer = thread.path[1]!;
		expect(answer.parent_id).toBe('m1');
		thread = { ...thread, path: [thread.path[0]!, finished(answer, { id: answer.id, content: 'Hi!', status: 'done', usage: { completion_tokens: 2 } })] };
		expect(thread.path[1]).toMatchObject({ status: 'done', content: 'Hi!', usage: { completion_tokens: 2 }, model: 'smollm2:135m' });
		expect(turnsFor(thread, 'And you?')).toEqual([
			{ role: 'user', content: 'Hello' },
			{ role: 'assistant', content: 'Hi!' },
			{ role: 'user', content: 'And you?' }
		]);
	});

	it('leaves out answers that wrote nothing, and sends the newest 500 turns at most', () => {
		const empty = withAnswer(withMine(EMPTY, 'm1', 'Hello'), 'a', 'm');
		expect(turnsFor(empty, 'Again')).toEqual([
			{ role: 'user', content: 'Hello' },
			{ role: 'user', content: 'Again' }
		]);
		const long = { path: Array.from({ length: 600 }, (_, n) => localMessage(`m${n}`, null, 'user', `${n}`)), beside: {} };
		const turns = turnsFor(long, 'last');
		expect(turns).toHaveLength(500);
		expect(turns.at(-1)).toEqual({ role: 'user', content: 'last' });
	});

	it('marks an answer cut off as stopped or interrupted, its text kept', () => {
		const thread = applyDelta(withAnswer(withMine(EMPTY, 'm1', 'Hello'), 'a', 'm'), 'a', 'partial');
		expect(ended(thread, 'stopped').path[1]).toMatchObject({ status: 'stopped', content: 'partial' });
		expect(ended(thread, 'interrupted').path[1]!.status).toBe('interrupted');
		expect(ended(thread, 'stopped').path[0]!.status).toBe('done');
	});
});
