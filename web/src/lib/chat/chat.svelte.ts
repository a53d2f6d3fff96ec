/** The conversation open on the chat page, with its answers streaming in.
 *
 * It lives outside the page component so a new chat keeps streaming while the address changes from
 * `/` to `/c/<id>`. Answers are written server-side: leaving the page only stops reading; opening the
 * conversation again (or a reload) follows every answer still being written from where it is. */

import { api, call, type Conversation, type ConversationUpdate, type GenerationOptions } from '$lib/api/client';
import { ApiError, messageOf } from '$lib/errors';
import { conversations } from './conversations.svelte';
import { stream, type ChatEvent } from './stream';
import { ended, finished, turnsFor, withAnswer, withMine, type TemporaryDone } from './temporary';
import {
	applyDelta,
	applyDone,
	applyFailed,
	applyFeedback,
	applyStart,
	EMPTY,
	fromPath,
	generating,
	prepend,
	resumeId,
	type Message,
	type Thread
} from './thread';

const base = (id: string) => `/api/v1/conversations/${encodeURIComponent(id)}`;

export type NewChat = { model: string; system?: string | null; options?: GenerationOptions };

class Chat {
	id: string | null = $state(null);
	conversation: Conversation | null = $state(null);
	thread: Thread = $state(EMPTY);
	moreBefore = $state(false);
	loading = $state(false);
	/** Why the conversation could not be shown (`missing`: it does not exist, or is not mine). */
	missing = $state(false);
	loadError: string | null = $state(null);
	/** Why the last send, regenerate or stop failed, in words. */
	error: string | null = $state(null);
	/** A temporary chat: its turns live in this page only, nothing is stored; a reset ends it. */
	temporary = $state(false);
	#temporaryTurn = 0;
	#session = 0;
	#controllers = new Set<AbortController>();
	#following = new Set<string>();
	#lastIds = new Map<string, string>();
	#titlePending = false;

	get streaming(): boolean {
		return generating(this.thread).length > 0;
	}

	/** Stop reading every stream (the answers go on server-side). */
	#detach(): void {
		for (const controller of this.#controllers) controller.abort();
		this.#controllers.clear();
		this.#following.clear();
		this.#lastIds.clear();
		this.#session += 1;
	}

	/** A new chat: nothing open. */
	reset(): void {
		this.#detach();
		this.id = null;
		this.conversation = null;
		this.thread = EMPTY;
		this.moreBefore = false;
		this.missing = false;
		this.loadError = null;
		this.error = null;
		this.loading = false;
		this.temporary = false;
	}

	/** Show conversation `id` (nothing to do when it is the one open: a new chat that just got its
	 * address keeps its streams). */
	async open(id: string): Promise<void> {
		if (this.id === id && (this.conversation || this.loading || this.missing)) return;
		this.reset();
		this.id = id;
		this.loading = true;
		const session = this.#session;
		try {
			const detail = await call(api.GET('/api/v1/conversations/{conversation_id}', { params: { path: { conversation_id: id } } }));
			if (session !== this.#session) return;
			const { messages, more_before, ...conversation } = detail;
			this.conversation = conversation;
			this.thread = fromPath(messages);
			this.moreBefore = more_before;
			this.#resume();
		} catch (error) {
			if (session !== this.#session) return;
			if (error instanceof ApiError && (error.status === 404 || error.status === 422)) this.missing = true;
			else this.loadError = messageOf(error);
		} finally {
			if (session === this.#session) this.loading = false;
		}
	}

	async loadOlder(): Promise<void> {
		const first = this.thread.path[0];
		if (!this.id || !first || !this.moreBefore) return;
		const session = this.#session;
		try {
			const page = await call(
				api.GET('/api/v1/conversations/{conversation_id}/messages', {
					params: { path: { conversation_id: this.id }, query: { before: first.id } }
				})
			);
			if (session !== this.#session) return;
			this.thread = prepend(this.thread, page.items);
			this.moreBefore = page.next_cursor !== null;
		} catch (error) {
			if (session === this.#session) this.error = `Could not load earlier messages: ${messageOf(error)}`;
		}
	}

	#apply(event: ChatEvent): void {
		if (event.type === 'start') {
			this.thread = applyStart(this.thread, event.data);
			this.#touch();
			return;
		}
		const id = event.type === 'done' ? event.data.id : event.data.message_id;
		if (id) this.#lastIds.set(id, event.id);
		if (event.type === 'delta') this.thread = applyDelta(this.thread, event.data.message_id, event.data.content);
		else if (event.type === 'done') {
			this.thread = applyDone(this.thread, event.data);
			this.#ended();
		} else if (event.type === 'failed') {
			this.thread = applyFailed(this.thread, event.data.message_id, event.data.detail);
			this.#ended();
		}
	}

	/** The conversation moved to the top of the list (it was just active). */
	#touch(): void {
		if (this.conversation) {
			this.conversation = { ...this.conversation, updated_at: new Date().toISOString() };
			conversations.upsert(this.conversation);
		}
	}

	/** After the first exchange the platform writes a title in the background: look for it a few
	 * times over the next half minute, until it changes. */
	#ended(): void {
		if (this.streaming || !this.conversation || !this.#titlePending) return;
		this.#titlePending = false;
		const { id, title } = this.conversation;
		const session = this.#session;
		const look = async (waits: number[]): Promise<void> => {
			const [wait, ...rest] = waits;
			if (wait === undefined) return;
			await new Promise((resolve) => setTimeout(resolve, wait));
			if (session !== this.#session) return;
			const fresh = await this.#refresh(id);
			if (!fresh || fresh.title === title) await look(rest);
		};
		void look([1500, 3000, 5000, 10000, 15000, 30000]);
	}

	async #refresh(id: string): Promise<Conversation | null> {
		try {
			const fresh = await call(api.GET('/api/v1/conversations/{conversation_id}', { params: { path: { conversation_id: id }, query: { limit: 1 } } }));
			const { messages: _messages, more_before: _more, ...conversation } = fresh;
			if (this.id === id) this.conversation = conversation;
			conversations.upsert(conversation);
			return conversation;
		} catch {
			return null; // the title can wait for the next visit
		}
	}

	/** Read one stream to its end; then follow, from where it stopped, any answer it left unfinished
	 * (a dropped connection). */
	async #run(url: string, init: Parameters<typeof stream>[1], covers: string[] = [], attempt = 0): Promise<void> {
		const controller = new AbortController();
		this.#controllers.add(controller);
		const session = this.#session;
		const mine = new Set(covers);
		for (const id of covers) this.#following.add(id);
		const onEvent = (event: ChatEvent) => {
			if (session !== this.#session) return;
			if (event.type === 'start') for (const id of event.data.assistant_message_ids) {
				mine.add(id);
				this.#following.add(id);
			}
			this.#apply(event);
		};
		let refused = false;
		try {
			await stream(url, init, onEvent, controller.signal);
		} catch (error) {
			if (error instanceof ApiError && error.status !== 0) {
				refused = true;
				if (session === this.#session && !controller.signal.aborted) this.error = error.message;
			}
		} finally {
			this.#controllers.delete(controller);
			if (session === this.#session) for (const id of mine) this.#following.delete(id);
		}
		if (refused || session !== this.#session || controller.signal.aborted) return;
		const unfinished = generating(this.thread).some((message) => mine.has(message.id));
		if (unfinished && attempt < 6) setTimeout(() => session === this.#session && this.#resume(attempt + 1), 400 * (attempt + 1));
	}

	/** Follow every answer being written that no stream here is reading. */
	#resume(attempt = 0): void {
		if (!this.id) return;
		const id = this.id;
		for (const message of generating(this.thread)) {
			if (this.#following.has(message.id)) continue;
			const lastEventId = this.#lastIds.get(message.id) ?? resumeId(message);
			const url = `${base(id)}/messages/${encodeURIComponent(message.id)}/stream`;
			void this.#run(url, { method: 'GET', lastEventId }, [message.id], attempt);
		}
	}

	/** Make the conversation for a new chat (the first send). */
	async create(start: NewChat): Promise<Conversation> {
		const conversation = await call(
			api.POST('/api/v1/conversations', {
				body: { model: start.model, system: start.system || null, options: start.options ?? {}, summarise: false }
			})
		);
		this.reset();
		this.id = conversation.id;
		this.conversation = conversation;
		conversations.upsert(conversation);
		return conversation;
	}

	/** Send my message (to one model, or up to four side by side); `editOf`: a message of mine this one
	 * replaces, as a new branch beside it. */
	async send(content: string, models: string[], editOf: string | null = null): Promise<void> {
		if (!this.id) return;
		this.error = null;
		const body: Record<string, unknown> = { content };
		if (models.length > 1 || (models[0] && models[0] !== this.conversation?.model)) body.models = models;
		if (editOf) body.edit_of = editOf;
		this.#titlePending = this.thread.path.length === 0;
		await this.#run(`${base(this.id)}/messages`, { method: 'POST', body });
	}

	async regenerate(messageId: string, model?: string): Promise<void> {
		if (!this.id) return;
		this.error = null;
		await this.#run(`${base(this.id)}/messages/${encodeURIComponent(messageId)}/regenerate`, {
			method: 'POST',
			body: model ? { model } : {}
		});
	}

	/** Go on writing an answer that stopped or reached its length limit: the same answer grows. */
	async continueAnswer(messageId: string): Promise<void> {
		if (!this.id) return;
		this.error = null;
		await this.#run(`${base(this.id)}/messages/${encodeURIComponent(messageId)}/continue`, { method: 'POST' });
	}

	/** My feedback on an answer changed here (the thumbs): the thread keeps it. */
	setFeedback(messageId: string, feedback: Message['feedback']): void {
		this.thread = applyFeedback(this.thread, messageId, feedback);
	}

	/** Send my message in a temporary chat: the whole exchange goes with it, nothing is stored. */
	async sendTemporary(content: string, model: string, system: string | null, options: GenerationOptions): Promise<void> {
		if (this.id || !this.temporary) return;
		this.error = null;
		const messages = turnsFor(this.thread, content);
		this.#temporaryTurn += 1;
		this.thread = withMine(this.thread, `temporary-mine-${this.#temporaryTurn}`, content);
		const controller = new AbortController();
		this.#controllers.add(controller);
		const session = this.#session;
		const onEvent = (event: ChatEvent) => {
			if (session !== this.#session) return;
			if (event.type === 'start') {
				const id = event.data.assistant_message_ids[0];
				if (id) this.thread = withAnswer(this.thread, id, model);
			} else if (event.type === 'delta') this.thread = applyDelta(this.thread, event.data.message_id, event.data.content);
			else if (event.type === 'done') {
				const current = this.messageById(event.data.id);
				if (current) this.thread = applyDone(this.thread, finished(current, event.data as TemporaryDone));
			} else if (event.type === 'failed') this.thread = applyFailed(this.thread, event.data.message_id, event.data.detail);
		};
		try {
			await stream('/api/v1/temporary-chat', { method: 'POST', body: { model, messages, system: system || null, options } }, onEvent, controller.signal);
		} catch (error) {
			if (session === this.#session && !controller.signal.aborted) this.error = messageOf(error);
		} finally {
			this.#controllers.delete(controller);
		}
		if (session !== this.#session) return;
		this.thread = ended(this.thread, controller.signal.aborted ? 'stopped' : 'interrupted');
	}

	/** Stop every answer being written (the text so far is kept, marked stopped). */
	async stop(): Promise<void> {
		if (this.temporary && !this.id) {
			for (const controller of this.#controllers) controller.abort(); // the platform ends it when we leave
			return;
		}
		if (!this.id) return;
		const id = this.id;
		await Promise.all(
			generating(this.thread).map(async (message) => {
				try {
					const stopped = await call(
						api.POST('/api/v1/conversations/{conversation_id}/messages/{message_id}/stop', {
							params: { path: { conversation_id: id, message_id: message.id } }
						})
					);
					if (this.id === id && stopped.status !== 'generating') this.thread = applyDone(this.thread, stopped);
				} catch (error) {
					if (error instanceof ApiError && error.status === 409) return; // it had just finished
					this.error = `Could not stop the answer: ${messageOf(error)}`;
				}
			})
		);
	}

	/** Show the branch through `messageId` (the branch switcher, or picking a side-by-side answer). */
	async switchTo(messageId: string): Promise<void> {
		if (!this.id) return;
		const session = this.#session;
		try {
			const detail = await call(
				api.PUT('/api/v1/conversations/{conversation_id}/leaf', {
					params: { path: { conversation_id: this.id } },
					body: { message_id: messageId }
				})
			);
			if (session !== this.#session) return;
			this.thread = fromPath(detail.messages);
			this.moreBefore = detail.more_before;
			this.#resume();
		} catch (error) {
			this.error = `Could not switch branches: ${messageOf(error)}`;
		}
	}

	/** Change the model, system prompt or options (for the next messages). */
	async update(changes: ConversationUpdate): Promise<boolean> {
		if (!this.id) return false;
		const changed = await conversations.change(this.id, changes);
		if (changed && this.id === changed.id) this.conversation = changed;
		return changed !== null;
	}

	messageById(id: string): Message | undefined {
		return [...this.thread.path, ...Object.values(this.thread.beside).flat()].find((message) => message.id === id);
	}
}

export const chat = new Chat();
