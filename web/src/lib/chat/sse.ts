/** Server-sent events read from a `fetch` body (EventSource cannot POST or send a bearer token).
 *
 * The parser follows the HTML standard's event-stream rules: lines end in LF, CR or CRLF (also split
 * across chunks); `event`, `data` (several lines joined by LF), `id` and `retry` fields; lines starting
 * with `:` are comments; a blank line dispatches; a block with no data dispatches nothing; the last
 * event id sticks until another one replaces it. */

export type ServerEvent = { event: string; data: string; id: string };

export class EventParser {
	#buffer = '';
	#pendingCR = false;
	#event = '';
	#data: string[] = [];
	#hasData = false;
	/** The last `id:` seen (what a reconnect sends back as `Last-Event-ID`). */
	lastEventId = '';

	/** The events completed by this chunk of text. */
	push(chunk: string): ServerEvent[] {
		let text = chunk;
		if (this.#pendingCR) {
			this.#pendingCR = false;
			if (text.startsWith('\n')) text = text.slice(1); // the LF of a CRLF split across chunks
		}
		this.#buffer += text;
		const out: ServerEvent[] = [];
		let start = 0;
		for (let at = 0; at < this.#buffer.length; at++) {
			const char = this.#buffer[at];
			if (char !== '\n' && char !== '\r') continue;
			const line = this.#buffer.slice(start, at);
			if (char === '\r') {
				if (at + 1 === this.#buffer.length) this.#pendingCR = true;
				else if (this.#buffer[at + 1] === '\n') at += 1;
			}
			start = at + 1;
			const event = this.#line(line);
			if (event) out.push(event);
		}
		this.#buffer = this.#buffer.slice(start);
		return out;
	}

	/** What a stream that ended without a final blank line leaves: nothing (the standard drops it). */
	end(): ServerEvent[] {
		this.#buffer = '';
		this.#reset();
		return [];
	}

	#reset(): void {
		this.#event = '';
		this.#data = [];
		this.#hasData = false;
	}

	#line(line: string): ServerEvent | null {
		if (line === '') {
			if (!this.#hasData) {
				this.#reset();
				return null;
			}
			const event = { event: this.#event || 'message', data: this.#data.join('\n'), id: this.lastEventId };
			this.#reset();
			return event;
		}
		if (line.startsWith(':')) return null;
		const colon = line.indexOf(':');
		const field = colon === -1 ? line : line.slice(0, colon);
		let value = colon === -1 ? '' : line.slice(colon + 1);
		if (value.startsWith(' ')) value = value.slice(1);
		if (field === 'event') this.#event = value;
		else if (field === 'data') {
			this.#data.push(value);
			this.#hasData = true;
		} else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
		return null;
	}
}

/** The events of a response body as they arrive; stops quietly when `signal` aborts. */
export async function* readEvents(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<ServerEvent> {
	const parser = new EventParser();
	const reader = body.getReader();
	const decoder = new TextDecoder();
	const abort = () => void reader.cancel().catch(() => {});
	signal?.addEventListener('abort', abort, { once: true });
	try {
		while (true) {
			const { value, done } = await reader.read();
			if (done) break;
			yield* parser.push(decoder.decode(value, { stream: true }));
		}
		yield* parser.push(decoder.decode());
		yield* parser.end();
	} catch (error) {
		if (signal?.aborted) return;
		throw error;
	} finally {
		signal?.removeEventListener('abort', abort);
		reader.releaseLock();
	}
}
