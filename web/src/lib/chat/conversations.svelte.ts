/** My conversations and folders as the sidebar shows them: a page at a time, changed optimistically
 * (the row changes at once; an error puts it back and says why). The chat page tells this list about
 * new conversations and new titles. */

import { api, call, type Conversation, type ConversationUpdate, type Folder, type Schemas } from '$lib/api/client';
import { messageOf } from '$lib/errors';
import { Pager } from '$lib/pager.svelte';
import { toasts } from '$lib/toast.svelte';

export type SearchHit = Schemas['SearchHit'];

/** Pinned first, then the newest activity first: the order the platform lists them in. */
export function listOrder(a: Conversation, b: Conversation): number {
	if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
	return b.updated_at.localeCompare(a.updated_at) || b.id.localeCompare(a.id);
}

/** Folders as a tree, depth first, by name: `[folder, depth]` pairs. */
export function folderTree(folders: readonly Folder[]): [Folder, number][] {
	const children = new Map<string | null, Folder[]>();
	const known = new Set(folders.map((folder) => folder.id));
	for (const folder of folders) {
		const parent = folder.parent_id && known.has(folder.parent_id) ? folder.parent_id : null;
		children.set(parent, [...(children.get(parent) ?? []), folder]);
	}
	const out: [Folder, number][] = [];
	const walk = (parent: string | null, depth: number) => {
		const level = [...(children.get(parent) ?? [])].sort((a, b) => a.name.localeCompare(b.name));
		for (const folder of level) {
			out.push([folder, depth]);
			if (depth < 20) walk(folder.id, depth + 1);
		}
	};
	walk(null, 0);
	return out;
}

class Conversations {
	pager = new Pager<Conversation>(async (cursor) =>
		call(api.GET('/api/v1/conversations', { params: { query: { archived: this.archived, limit: 50, ...(cursor ? { cursor } : {}) } } })),
		(item) => item.id
	);
	folders: Folder[] = $state([]);
	archived = $state(false);
	#started = false;

	start(): void {
		if (this.#started) return;
		this.#started = true;
		void this.pager.reset();
		void this.loadFolders();
	}

	stop(): void {
		this.#started = false;
		this.pager.items = [];
		this.folders = [];
	}

	async showArchived(archived: boolean): Promise<void> {
		this.archived = archived;
		await this.pager.reset();
	}

	async loadFolders(): Promise<void> {
		try {
			this.folders = (await call(api.GET('/api/v1/folders'))).items;
		} catch (error) {
			toasts.show(`Could not load your folders: ${messageOf(error)}`, 'error');
		}
	}

	/** A conversation made or changed on the chat page: into its place in the list. */
	upsert(conversation: Conversation): void {
		if (conversation.archived !== this.archived) {
			this.pager.remove((item) => item.id === conversation.id);
			return;
		}
		const others = this.pager.items.filter((item) => item.id !== conversation.id);
		this.pager.items = [...others, conversation].sort(listOrder);
	}

	/** A folder's conversations (its first page), merged into the list when the folder opens. */
	async loadFolder(folderId: string): Promise<void> {
		try {
			const page = await call(api.GET('/api/v1/conversations', { params: { query: { archived: this.archived, folder_id: folderId, limit: 100 } } }));
			const known = new Set(this.pager.items.map((item) => item.id));
			this.pager.items = [...this.pager.items, ...page.items.filter((item) => !known.has(item.id))].sort(listOrder);
		} catch (error) {
			toasts.show(messageOf(error), 'error');
		}
	}

	find(id: string): Conversation | undefined {
		return this.pager.items.find((item) => item.id === id);
	}

	/** Change one conversation: the row at once, the platform next; put back on failure. */
	async change(id: string, changes: ConversationUpdate): Promise<Conversation | null> {
		const before = this.find(id);
		if (before) this.upsert({ ...before, ...(changes as Partial<Conversation>) });
		try {
			const after = await call(api.PATCH('/api/v1/conversations/{conversation_id}', { params: { path: { conversation_id: id } }, body: changes }));
			this.upsert(after);
			return after;
		} catch (error) {
			if (before) this.upsert(before);
			toasts.show(messageOf(error), 'error');
			return null;
		}
	}

	async remove(id: string): Promise<boolean> {
		const before = this.find(id);
		this.pager.remove((item) => item.id === id);
		try {
			await call(api.DELETE('/api/v1/conversations/{conversation_id}', { params: { path: { conversation_id: id } } }));
			return true;
		} catch (error) {
			if (before) this.upsert(before);
			toasts.show(messageOf(error), 'error');
			return false;
		}
	}

	async createFolder(name: string, parentId: string | null = null): Promise<Folder | null> {
		try {
			const folder = await call(api.POST('/api/v1/folders', { body: { name, parent_id: parentId } }));
			this.folders = [...this.folders, folder];
			return folder;
		} catch (error) {
			toasts.show(messageOf(error), 'error');
			return null;
		}
	}

	async changeFolder(id: string, changes: { name?: string; parent_id?: string | null }): Promise<void> {
		try {
			const folder = await call(api.PATCH('/api/v1/folders/{folder_id}', { params: { path: { folder_id: id } }, body: changes }));
			this.folders = this.folders.map((item) => (item.id === id ? folder : item));
		} catch (error) {
			toasts.show(messageOf(error), 'error');
		}
	}

	async removeFolder(id: string): Promise<void> {
		try {
			await call(api.DELETE('/api/v1/folders/{folder_id}', { params: { path: { folder_id: id } } }));
			await this.loadFolders();
			await this.pager.reset();
		} catch (error) {
			toasts.show(messageOf(error), 'error');
		}
	}
}

export const conversations = new Conversations();

/** Full-text search over my conversations' titles, messages and notes (`GET /api/v1/search`). */
export async function search(q: string, signal: AbortSignal): Promise<SearchHit[]> {
	const page = await call(api.GET('/api/v1/search', { params: { query: { q, limit: 20 } }, signal }));
	return page.items.filter((hit) => (hit.kind === 'note' ? !!hit.note_id : !!hit.conversation_id));
}

/** Where a search hit opens: a note on its own page, a message marked in its conversation. */
export function hitHref(hit: SearchHit): string {
	if (hit.kind === 'note' && hit.note_id) return `/notes/${encodeURIComponent(hit.note_id)}`;
	const conversation = `/c/${encodeURIComponent(hit.conversation_id ?? '')}`;
	return hit.message_id ? `${conversation}#m-${hit.message_id}` : conversation;
}
