import { describe, expect, it } from 'vitest';
import { EventParser, readEvents } from './sse';

function body(...chunks: string[]): ReadableStream<Uint8Array> {
	const encoder = new TextEncoder();
	return new ReadableStream({
		start(controller) {
			for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
			controller.close();
		}
	});
}

async function all(stream: ReadableStream<Uint8Array>) {
	const out = [];
	for await (const event of readEvents(stream)) out.push(event);
	return out;
}

describe('EventParser', () => {
	it('reads the platform events: id, event, data', () => {
		const parser = new EventParser();
		const events = parser.push('id: m1:0\nevent: start\ndata: {"a":1}\n\nid: m1:5\nevent: delta\ndata: {"content":"hello"}\n\n');
		expect(events).toEqual([
			{ event: 'start', data: '{"a":1}', id: 'm1:0' },
			{ event: 'delta', data: '{"content":"hello"}', id: 'm1:5' }
		]);
		expect(parser.lastEventId).toBe('m1:5');
	});

	it('keeps an event split anywhere across chunks until its blank line', () => {
		const text = 'id: x:3\nevent: delta\ndata: {"content":"abc"}\n\n';
		for (let cut = 1; cut < text.length; cut++) {
			const parser = new EventParser();
			const events = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
			expect(events, `cut at ${cut}`).toEqual([{ event: 'delta', data: '{"content":"abc"}', id: 'x:3' }]);
		}
	});

	it('takes CRLF and CR line ends, even a CRLF split between chunks', () => {
		const parser = new EventParser();
		const events = [...parser.push('event: a\r'), ...parser.push('\ndata: 1\r\n\r'), ...parser.push('\nevent: b\rdata: 2\r\r')];
		expect(events.map((event) => [event.event, event.data])).toEqual([
			['a', '1'],
			['b', '2']
		]);
	});

	it('joins data lines, skips comments, defaults the name to message, drops blocks without data', () => {
		const parser = new EventParser();
		const events = parser.push(': keep-alive\n\nevent: nothing\n\ndata: one\ndata:two\ndata\n\n');
		expect(events).toEqual([{ event: 'message', data: 'one\ntwo\n', id: '' }]);
	});

	it('keeps the last id for later events, and drops an unfinished event at the end', () => {
		const parser = new EventParser();
		expect(parser.push('id: 7\ndata: a\n\ndata: b\n\ndata: c')).toEqual([
			{ event: 'message', data: 'a', id: '7' },
			{ event: 'message', data: 'b', id: '7' }
		]);
		expect(parser.end()).toEqual([]);
	});
});

describe('readEvents', () => {
	it('decodes UTF-8 split inside a character and yields events as they complete', async () => {
		const bytes = new TextEncoder().encode('event: delta\ndata: {"content":"héllo 🥑"}\n\n');
		const stream = new ReadableStream<Uint8Array>({
			start(controller) {
				controller.enqueue(bytes.slice(0, 25));
				controller.enqueue(bytes.slice(25, 38));
				controller.enqueue(bytes.slice(38));
				controller.close();
			}
		});
		const events = await all(stream);
		expect(events).toHaveLength(1);
		expect(JSON.parse(events[0]!.data).content).toBe('héllo 🥑');
	});

	it('ends quietly when aborted', async () => {
		const controller = new AbortController();
		let push: ((text: string) => void) | null = null;
		const stream = new ReadableStream<Uint8Array>({
			start(streamController) {
				push = (text) => streamController.enqueue(new TextEncoder().encode(text));
			}
		});
		const seen: string[] = [];
		const reading = (async () => {
			for await (const event of readEvents(stream, controller.signal)) seen.push(event.data);
		})();
		push!('data: first\n\n');
		await new Promise((resolve) => setTimeout(resolve, 10));
		controller.abort();
		await reading;
		expect(seen).toEqual(['first']);
	});

	it('reads a whole body', async () => {
		expect((await all(body('data: 1\n\n', 'data: 2\n\n'))).map((event) => event.data)).toEqual(['1', '2']);
	});
});
