import { describe, expect, it } from 'vitest';
import {
	applyDelta,
	applyDone,
	applyFailed,
	applyFeedback,
	applyStart,
	branchOf,
	continuable,
	sideBySide,
	EMPTY,
	fromPath,
	generating,
	prepend,
	resumeId,
	statusLine,
	type Message,
	type Start
} from './thread';

function message(id: string, parent: string | null, role: 'user' | 'assistant', extra: Partial<Message> = {}): Message {
	return {
		id,
		parent_id: parent,
		role,
		content: role === 'user' ? `question ${id}` : '',
		model: role === 'assistant' ? 'smollm2:135m' : null,
		status: role === 'assistant' ? 'generating' : 'done',
		error: null,
		done_reason: null,
		usage: null,
		created_at: '2026-12-07T10:00:00Z',
		siblings: [id],
		in_context: true,
		...extra
	};
}

function start(user: Message | null, answers: Message[]): Start {
	return {
		conversation_id: 'c',
		user_message_id: user?.id ?? null,
		assistant_message_ids: answers.map((answer) => answer.id),
		user_message: user,
		assistant_messages: answers
	};
}

const done = (m: Message, content: string): Message => ({ ...m, content, status: 'done' });

describe('a conversation as events arrive', () => {
	it('appends my message and the answer, then its text, then its end', () => {
		let thread = applyStart(EMPTY, start(message('u1', null, 'user'), [message('a1', 'u1', 'assistant')]));
		expect(thread.path.map((m) => m.id)).toEqual(['u1', 'a1']);
		expect(generating(thread).map((m) => m.id)).toEqual(['a1']);
		thread = applyDelta(thread, 'a1', 'Hel');
		thread = applyDelta(thread, 'a1', 'lo');
		expect(thread.path[1]!.content).toBe('Hello');
		thread = applyDone(thread, { ...done(message('a1', 'u1', 'assistant'), 'Hello'), usage: { completion_tokens: 2 } });
		expect(thread.path[1]!.status).toBe('done');
		expect(thread.path[1]!.usage).toEqual({ completion_tokens: 2 });
		expect(generating(thread)).toEqual([]);
	});

	it('leaves the thread alone for an answer it does not know', () => {
		const thread = fromPath([message('u1', null, 'user')]);
		expect(applyDelta(thread, 'other', 'x')).toBe(thread);
	});

	it('marks a failed answer with the reason and keeps its partial text', () => {
		let thread = applyStart(EMPTY, start(message('u1', null, 'user'), [message('a1', 'u1', 'assistant')]));
		thread = applyDelta(thread, 'a1', 'part');
		thread = applyFailed(thread, 'a1', 'the node went away');
		expect(thread.path[1]).toMatchObject({ status: 'failed', error: 'the node went away', content: 'part' });
		expect(statusLine(thread.path[1]!)).toBe('Failed: the node went away.');
	});
});

describe('branches', () => {
	const u1 = message('u1', null, 'user');
	const a1 = done(message('a1', 'u1', 'assistant'), 'first');
	const u2 = message('u2', 'a1', 'user');
	const a2 = done(message('a2', 'u2', 'assistant'), 'second');

	it('a regenerated answer replaces the old one on the path and joins its siblings', () => {
		const thread = applyStart(fromPath([u1, a1, u2, a2]), start(null, [message('a2b', 'u2', 'assistant', { siblings: ['a2', 'a2b'] })]));
		expect(thread.path.map((m) => m.id)).toEqual(['u1', 'a1', 'u2', 'a2b']);
		expect(branchOf(thread.path[3]!)).toEqual({ index: 2, count: 2, previous: 'a2', next: null });
	});

	it('an edit of an earlier message cuts the path there and becomes that message’s sibling', () => {
		const edited = message('u1b', null, 'user', { content: 'better question' });
		const thread = applyStart(fromPath([u1, a1, u2, a2]), start(edited, [message('a3', 'u1b', 'assistant')]));
		expect(thread.path.map((m) => m.id)).toEqual(['u1b', 'a3']);
		expect(branchOf(thread.path[0]!)).toEqual({ index: 2, count: 2, previous: 'u1', next: null });
		expect(branchOf(thread.path[1]!).count).toBe(1);
	});

	it('an edit in the middle keeps what came before', () => {
		const edited = message('u2b', 'a1', 'user');
		const thread = applyStart(fromPath([u1, a1, u2, a2]), start(edited, [message('a4', 'u2b', 'assistant')]));
		expect(thread.path.map((m) => m.id)).toEqual(['u1', 'a1', 'u2b', 'a4']);
		expect(thread.path[2]!.siblings).toEqual(['u2', 'u2b']);
	});

	it('the switcher names the neighbours and the place', () => {
		const middle = { id: 'b', siblings: ['a', 'b', 'c'] };
		expect(branchOf(middle)).toEqual({ index: 2, count: 3, previous: 'a', next: 'c' });
		expect(branchOf({ id: 'x', siblings: [] })).toEqual({ index: 1, count: 1, previous: null, next: null });
	});

	it('the siblings known here survive a done event that lists fewer', () => {
		let thread = applyStart(fromPath([u1, a1, u2, a2]), start(null, [message('a2b', 'u2', 'assistant', { siblings: ['a2', 'a2b'] })]));
		thread = applyDone(thread, done(message('a2b', 'u2', 'assistant'), 'again'));
		expect(thread.path[3]!.siblings).toEqual(['a2', 'a2b']);
		expect(thread.path[3]!.content).toBe('again');
	});
});

describe('side-by-side answers', () => {
	it('puts the first answer on the path and the others beside it, all streaming', () => {
		const answers = ['x', 'y', 'z'].map((id) => message(id, 'u1', 'assistant', { siblings: ['x', 'y', 'z'] }));
		let thread = applyStart(EMPTY, start(message('u1', null, 'user'), answers));
		expect(thread.path.map((m) => m.id)).toEqual(['u1', 'x']);
		expect(thread.beside['x']!.map((m) => m.id)).toEqual(['y', 'z']);
		thread = applyDelta(thread, 'z', 'zed');
		thread = applyDelta(thread, 'x', 'ex');
		expect(thread.beside['x']![1]!.content).toBe('zed');
		expect(generating(thread).map((m) => m.id)).toEqual(['x', 'y', 'z']);
		thread = applyDone(thread, done(answers[1]!, 'why'));
		expect(generating(thread).map((m) => m.id)).toEqual(['x', 'z']);
		expect(branchOf(thread.beside['x']![0]!)).toMatchObject({ index: 2, count: 3 });
	});

	it('a later send keeps them; an edit above them drops them', () => {
		const answers = ['x', 'y'].map((id) => message(id, 'u1', 'assistant', { siblings: ['x', 'y'] }));
		let thread = applyStart(EMPTY, start(message('u1', null, 'user'), answers));
		thread = applyStart(thread, start(message('u2', 'x', 'user'), [message('a2', 'u2', 'assistant')]));
		expect(Object.keys(thread.beside)).toEqual(['x']);
		thread = applyStart(thread, start(message('u1b', null, 'user'), [message('a3', 'u1b', 'assistant')]));
		expect(thread.beside).toEqual({});
	});
});

describe('after a reload', () => {
	it('answers written beside one on the path come back side by side, in the order asked', () => {
		const y = done(message('y', 'u1', 'assistant', { siblings: ['x', 'y', 'z'] }), 'why');
		const z = done(message('z', 'u1', 'assistant', { siblings: ['x', 'y', 'z'] }), 'zed');
		const x = done(message('x', 'u1', 'assistant', { siblings: ['x', 'y', 'z'] }), 'ex');
		const thread = fromPath([message('u1', null, 'user'), { ...y, beside: [z, x] }]);
		expect(thread.path.map((m) => m.id)).toEqual(['u1', 'y']);
		expect(thread.beside['y']!.map((m) => m.id)).toEqual(['z', 'x']);
		expect(sideBySide(thread.path[1]!, thread.beside['y']!).map((m) => m.id)).toEqual(['x', 'y', 'z']);
		expect(fromPath([message('u1', null, 'user'), x]).beside).toEqual({});
	});

	it('keeps my feedback given here, and through the end of an answer continued', () => {
		const given = { id: 'f', conversation_id: 'c', message_id: 'a1', rating: 'up' as const, reason: null, comment: null, preferred: false, created_at: '', updated_at: '' };
		let thread = fromPath([message('u1', null, 'user'), done(message('a1', 'u1', 'assistant'), 'hi')]);
		thread = applyFeedback(thread, 'a1', given);
		expect(thread.path[1]!.feedback).toEqual(given);
		thread = applyDone(thread, done(message('a1', 'u1', 'assistant'), 'hi there'));
		expect(thread.path[1]!.feedback).toEqual(given);
		expect(applyFeedback(thread, 'a1', null).path[1]!.feedback).toBeNull();
	});
});

describe('continuing an answer', () => {
	it('is offered for a stopped answer or one cut at its length limit', () => {
		expect(continuable({ role: 'assistant', status: 'stopped', done_reason: null })).toBe(true);
		expect(continuable({ role: 'assistant', status: 'done', done_reason: 'length' })).toBe(true);
		expect(continuable({ role: 'assistant', status: 'done', done_reason: 'stop' })).toBe(false);
		expect(continuable({ role: 'assistant', status: 'failed', done_reason: null })).toBe(false);
		expect(continuable({ role: 'user', status: 'stopped', done_reason: null })).toBe(false);
	});

	it('grows the same answer in place, its branches kept', () => {
		const u1 = message('u1', null, 'user');
		const a1 = done(message('a1', 'u1', 'assistant', { siblings: ['a0', 'a1'] }), 'Once upon');
		let thread = fromPath([u1, { ...a1, status: 'stopped' }]);
		thread = applyStart(thread, start(null, [message('a1', 'u1', 'assistant', { content: 'Once upon', siblings: ['a1'] })]));
		expect(thread.path.map((m) => m.id)).toEqual(['u1', 'a1']);
		expect(thread.path[1]).toMatchObject({ status: 'generating', content: 'Once upon', siblings: ['a0', 'a1'] });
		thread = applyDelta(thread, 'a1', ' a time');
		expect(thread.path[1]!.content).toBe('Once upon a time');
	});
});

describe('helpers', () => {
	it('resumes after the characters received, counted as the server counts them', () => {
		expect(resumeId({ id: 'm', content: 'a🥑b' })).toBe('m:3');
		expect(resumeId({ id: 'm', content: '' })).toBe('m:0');
	});

	it('loads older messages above without repeating any', () => {
		const thread = prepend(fromPath([message('u2', 'a1', 'user')]), [message('u1', null, 'user'), message('u2', 'a1', 'user')]);
		expect(thread.path.map((m) => m.id)).toEqual(['u1', 'u2']);
	});

	it('says why an answer ended early', () => {
		const base = { error: null, done_reason: null };
		expect(statusLine({ ...base, status: 'stopped' })).toMatch(/^Stopped/);
		expect(statusLine({ ...base, status: 'interrupted' })).toMatch(/^Interrupted/);
		expect(statusLine({ ...base, status: 'done' })).toBeNull();
		expect(statusLine({ ...base, status: 'done', done_reason: 'length' })).toMatch(/length/);
		expect(statusLine({ ...base, status: 'failed', error: 'boom.' })).toBe('Failed: boom.');
	});
});
