/** The conversation as the chat page shows it: the active path of the message tree (oldest first),
 * and, under a prompt sent to several models at once, the other answers shown side by side.
 *
 * Pure functions over plain data (each returns a new thread), so the branch logic is tested without a
 * browser; the page keeps one thread in a `$state` and replaces it as events arrive. */

import type { Schemas } from '$lib/api/client';

export type Message = Schemas['MessagePublic'];
export type Status = Message['status'];

export type Thread = {
	/** The active path, oldest first. */
	path: Message[];
	/** Answer id on the path → the other answers written beside it (a multi-model send), in order. */
	beside: Record<string, Message[]>;
};

export type Start = {
	conversation_id: string;
	user_message_id: string | null;
	assistant_message_ids: string[];
	user_message: Message | null;
	assistant_messages: Message[];
};

export const EMPTY: Thread = { path: [], beside: {} };

/** The thread of a path the platform sent: the answers written beside one on the path (a send to
 * several models that none was picked from) come with it. */
export function fromPath(path: Message[]): Thread {
	const beside: Record<string, Message[]> = {};
	for (const message of path) if (message.beside?.length) beside[message.id] = message.beside;
	return { path, beside };
}

/** An answer and the ones beside it, in the order they were asked for (as their siblings are). */
export function sideBySide(message: Message, beside: readonly Message[]): Message[] {
	const order = (one: Message) => {
		const at = message.siblings.indexOf(one.id);
		return at === -1 ? Number.MAX_SAFE_INTEGER : at;
	};
	return [message, ...beside].sort((a, b) => order(a) - order(b));
}

function union(first: readonly string[], second: readonly string[]): string[] {
	const out = [...first];
	for (const id of second) if (!out.includes(id)) out.push(id);
	return out;
}

/** The path cut after message `parentId` (everything when it is null): where a new message goes. */
function cutAfter(path: readonly Message[], parentId: string | null): Message[] {
	if (parentId === null) return [];
	const at = path.findIndex((message) => message.id === parentId);
	return at === -1 ? [...path] : path.slice(0, at + 1);
}

/** A new message placed where an old one of the same parent was: it joins that one's siblings. */
function placed(message: Message, replaced: Message | undefined): Message {
	if (!replaced || replaced.parent_id !== message.parent_id) return message;
	return { ...message, siblings: union(replaced.siblings, message.siblings) };
}

/** The thread once a send (or a regenerate) has started: my message and the first answer on the
 * path (replacing the branch they were sent beside), the other answers beside the first. */
export function applyStart(thread: Thread, start: Start): Thread {
	const answers = start.assistant_messages;
	const first = answers[0];
	if (!first) return thread;
	const mine = start.user_message;
	const parentId = mine ? mine.parent_id : first.parent_id;
	const kept = cutAfter(thread.path, parentId);
	const path = [...kept];
	if (mine) path.push(placed(mine, thread.path[kept.length]));
	const siblings = answers.map((answer) => answer.id);
	const oldAnswer = mine ? undefined : thread.path[kept.length];
	path.push(placed({ ...first, siblings: union(first.siblings, siblings) }, oldAnswer));
	const beside = keepBeside(thread.beside, path);
	if (answers.length > 1) beside[first.id] = answers.slice(1).map((answer) => ({ ...answer, siblings: path.at(-1)!.siblings }));
	return { path, beside };
}

function keepBeside(beside: Record<string, Message[]>, path: readonly Message[]): Record<string, Message[]> {
	const out: Record<string, Message[]> = {};
	for (const message of path) if (beside[message.id]) out[message.id] = beside[message.id]!;
	return out;
}

function mapMessage(thread: Thread, id: string, change: (message: Message) => Message): Thread {
	let hit = false;
	const swap = (message: Message) => {
		if (message.id !== id) return message;
		hit = true;
		return change(message);
	};
	const path = thread.path.map(swap);
	const beside: Record<string, Message[]> = {};
	for (const [key, answers] of Object.entries(thread.beside)) beside[key] = answers.map(swap);
	return hit ? { path, beside } : thread;
}

/** Text appended to an answer as it is written. */
export function applyDelta(thread: Thread, id: string, content: string): Thread {
	return mapMessage(thread, id, (message) => ({ ...message, content: message.content + content }));
}

/** An answer's end (`done` carries the stored message): its final text, status and usage; the
 * siblings known here are kept (the event's own list may be shorter). */
export function applyDone(thread: Thread, final: Message): Thread {
	return mapMessage(thread, final.id, (message) => ({
		...final,
		siblings: union(message.siblings, final.siblings ?? []),
		in_context: message.in_context,
		feedback: final.feedback ?? message.feedback ?? null
	}));
}

/** My feedback on an answer given (or withdrawn: null) here. */
export function applyFeedback(thread: Thread, id: string, feedback: Message['feedback']): Thread {
	return mapMessage(thread, id, (message) => ({ ...message, feedback }));
}

/** Stopped, or cut at its length limit: an answer the model can go on writing. */
export function continuable(message: Pick<Message, 'role' | 'status' | 'done_reason'>): boolean {
	if (message.role !== 'assistant') return false;
	return message.status === 'stopped' || (message.status === 'done' && message.done_reason === 'length');
}

export function applyFailed(thread: Thread, id: string, detail: string): Thread {
	return mapMessage(thread, id, (message) => ({ ...message, status: 'failed', error: detail }));
}

/** Older messages of the path loaded above the ones shown. */
export function prepend(thread: Thread, older: Message[]): Thread {
	const known = new Set(thread.path.map((message) => message.id));
	return { ...thread, path: [...older.filter((message) => !known.has(message.id)), ...thread.path] };
}

/** Where a message stands among its siblings, for the `< 2/3 >` switcher. */
export type Branch = { index: number; count: number; previous: string | null; next: string | null };

export function branchOf(message: Pick<Message, 'id' | 'siblings'>): Branch {
	const siblings = message.siblings.length ? message.siblings : [message.id];
	const at = Math.max(0, siblings.indexOf(message.id));
	return {
		index: at + 1,
		count: siblings.length,
		previous: at > 0 ? siblings[at - 1]! : null,
		next: at < siblings.length - 1 ? siblings[at + 1]! : null
	};
}

/** Every answer still being written, on the path or beside it. */
export function generating(thread: Thread): Message[] {
	const all = [...thread.path, ...Object.values(thread.beside).flat()];
	return all.filter((message) => message.role === 'assistant' && message.status === 'generating');
}

/** `Last-Event-ID` for an answer whose text so far is known: the server counts characters (code
 * points), not UTF-16 units. */
export function resumeId(message: Pick<Message, 'id' | 'content'>): string {
	return `${message.id}:${Array.from(message.content).length}`;
}

/** Stopped, failed or interrupted: the words for the status line under such an answer. */
export function statusLine(message: Pick<Message, 'status' | 'error' | 'done_reason'>): string | null {
	if (message.status === 'stopped') return 'Stopped. The answer so far is kept.';
	if (message.status === 'interrupted') return 'Interrupted: the server stopped while writing this answer.';
	if (message.status === 'failed') return `Failed: ${message.error || 'the model did not answer'}.`.replace(/\.\.$/, '.');
	if (message.status === 'done' && message.done_reason === 'length') return 'Cut at the length limit.';
	return null;
}
