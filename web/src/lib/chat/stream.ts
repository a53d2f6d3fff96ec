/** Streamed answers over `fetch`: POST a message (or a regenerate) and read its server-sent events;
 * follow an answer again from where this page left it (`Last-Event-ID`). */

import { authorized } from '$lib/api/client';
import { errorFrom, offline } from '$lib/errors';
import { readEvents } from './sse';
import type { Message, Start } from './thread';

export type ChatEvent =
	| { type: 'start'; data: Start; id: string }
	| { type: 'delta'; data: { message_id: string; content: string }; id: string }
	| { type: 'done'; data: Message; id: string }
	| { type: 'failed'; data: { message_id: string; detail: string }; id: string };

const KNOWN = new Set(['start', 'delta', 'done', 'failed']);

/** The events this client knows, parsed; other names (later issues add some) are skipped. */
export function chatEvent(event: string, data: string, id: string): ChatEvent | null {
	if (!KNOWN.has(event)) return null;
	try {
		return { type: event, data: JSON.parse(data), id } as ChatEvent;
	} catch {
		return null;
	}
}

async function failure(response: Response): Promise<Error> {
	let body: unknown = null;
	try {
		body = await response.json();
	} catch {
		body = null;
	}
	return errorFrom(response.status, body, response.headers);
}

/** Send `init` to `url` and hand each known event to `onEvent` until the stream ends. Throws an
 * ApiError when the request is refused; returns quietly when `signal` aborts. */
export async function stream(
	url: string,
	init: { method: 'GET' | 'POST'; body?: unknown; lastEventId?: string },
	onEvent: (event: ChatEvent) => void,
	signal: AbortSignal
): Promise<void> {
	const headers = new Headers({ Accept: 'text/event-stream' });
	if (init.body !== undefined) headers.set('Content-Type', 'application/json');
	if (init.lastEventId) headers.set('Last-Event-ID', init.lastEventId);
	const request = new Request(new URL(url, location.origin), {
		method: init.method,
		headers,
		body: init.body === undefined ? undefined : JSON.stringify(init.body),
		signal,
		cache: 'no-store'
	});
	let response: Response;
	try {
		response = await authorized(request);
	} catch (error) {
		if (signal.aborted) return;
		throw error instanceof DOMException && error.name === 'AbortError' ? error : offline();
	}
	if (!response.ok || !response.body) throw await failure(response);
	for await (const raw of readEvents(response.body, signal)) {
		const event = chatEvent(raw.event, raw.data, raw.id);
		if (event) onEvent(event);
	}
}
