/** A temporary chat (`POST /api/v1/temporary-chat`): nothing is stored, so this page keeps the turns
 * and sends them all with each message; the answer streams with the usual events. Pure functions
 * over the page's thread, tested without a browser. */

import type { Schemas } from '$lib/api/client';
import type { Message, Thread } from './thread';

export type TemporaryTurn = Schemas['Turn'];
export type TemporaryChat = Schemas['TemporaryChat'];
/** What the `done` event of a temporary answer carries (no tree: no siblings, no parent). */
export type TemporaryDone = Pick<Message, 'id' | 'content' | 'status'> & Partial<Pick<Message, 'model' | 'usage' | 'done_reason'>>;

const MAX_TURNS = 500; // what the platform takes in one request

/** A message that lives in this page only. */
export function localMessage(id: string, parent: string | null, role: 'user' | 'assistant', content: string, model: string | null = null): Message {
	return {
		id,
		parent_id: parent,
		role,
		content,
		model,
		status: role === 'assistant' ? 'generating' : 'done',
		error: null,
		done_reason: null,
		usage: null,
		created_at: new Date().toISOString(),
		siblings: [id],
		in_context: true,
		feedback: null,
		beside: []
	};
}

/** The turns to send for a new message of mine: the exchange so far (answers that wrote nothing left
 * out) and the new message, the newest 500 at most. */
export function turnsFor(thread: Thread, content: string): TemporaryTurn[] {
	const turns: TemporaryTurn[] = thread.path
		.filter((message) => message.role === 'user' || message.content)
		.map((message) => ({ role: message.role === 'user' ? 'user' : 'assistant', content: message.content }));
	turns.push({ role: 'user', content });
	return turns.slice(-MAX_TURNS);
}

/** My message added to the thread, with the answer that will follow it once the stream starts. */
export function withMine(thread: Thread, id: string, content: string): Thread {
	const parent = thread.path.at(-1)?.id ?? null;
	return { path: [...thread.path, localMessage(id, parent, 'user', content)], beside: {} };
}

/** The answer's place once the stream has said its id. */
export function withAnswer(thread: Thread, id: string, model: string): Thread {
	const parent = thread.path.at(-1)?.id ?? null;
	return { path: [...thread.path, localMessage(id, parent, 'assistant', '', model)], beside: {} };
}

/** The answer as it ended (`done` carries its text, status and usage; the rest stays). */
export function finished(current: Message, done: TemporaryDone): Message {
	return {
		...current,
		content: done.content,
		status: done.status,
		usage: done.usage ?? current.usage,
		done_reason: done.done_reason ?? null,
		model: done.model ?? current.model
	};
}

/** Every answer still being written marked as ended (`stopped` by me, or `interrupted` when the
 * stream broke off), its text kept. */
export function ended(thread: Thread, status: 'stopped' | 'interrupted'): Thread {
	const path = thread.path.map((message) => (message.role === 'assistant' && message.status === 'generating' ? { ...message, status } : message));
	return { path, beside: {} };
}
