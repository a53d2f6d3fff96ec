/** Export and import of conversations: downloads of ours (JSON, every branch; Markdown, the branch
 * shown) and the import of a file, ours or Open WebUI's export. */

import { api, authorized, call, type Conversation } from '$lib/api/client';
import { errorFrom, offline } from '$lib/errors';

export type ExportFormat = 'json' | 'markdown';

const EXTENSION: Record<ExportFormat, string> = { json: 'json', markdown: 'md' };

/** A file name a download keeps: the title's letters and digits, dashes between. */
export function fileName(title: string, format: ExportFormat): string {
	const stem = title
		.normalize('NFKD')
		.replace(/\p{M}+/gu, '')
		.replace(/[^\p{L}\p{N}]+/gu, '-')
		.replace(/^-+|-+$/g, '')
		.slice(0, 80)
		.toLowerCase();
	return `${stem || 'conversation'}.${EXTENSION[format]}`;
}

/** The export URL of one conversation, or of all mine (`id` null). */
export function exportUrl(id: string | null, format: ExportFormat): string {
	const path = id ? `/api/v1/conversations/${encodeURIComponent(id)}/export` : '/api/v1/conversations/export';
	return `${path}?format=${format}`;
}

/** What a file holds, before it is sent: JSON, and of a shape an import takes (ours: `format`;
 * Open WebUI's: a chat, or a list of them, with a `history`). Null with the reason otherwise. */
export function readExport(text: string): { payload: unknown; count: number } | { error: string } {
	let payload: unknown;
	try {
		payload = JSON.parse(text);
	} catch {
		return { error: 'This file is not JSON. Choose a file exported from Avocado or Open WebUI.' };
	}
	if (payload && typeof payload === 'object' && !Array.isArray(payload) && 'format' in payload) {
		const items = (payload as { conversations?: unknown }).conversations;
		return Array.isArray(items) ? { payload, count: items.length } : { error: 'This export lists no conversations.' };
	}
	const chats = Array.isArray(payload) ? payload : [payload];
	const looksLikeOpenWebUi = chats.every((chat) => {
		if (!chat || typeof chat !== 'object') return false;
		const inner = (chat as { chat?: unknown }).chat ?? chat;
		return !!inner && typeof inner === 'object' && 'history' in inner;
	});
	if (!looksLikeOpenWebUi || chats.length === 0) return { error: 'This file is not an export Avocado reads (its own, or Open WebUI’s chat export).' };
	return { payload, count: chats.length };
}

/** Fetch an export with my session and hand it to the browser as a download. */
export async function download(url: string, name: string): Promise<void> {
	let response: Response;
	try {
		response = await authorized(new Request(new URL(url, location.origin)));
	} catch {
		throw offline();
	}
	if (!response.ok) {
		let body: unknown = null;
		try {
			body = await response.json();
		} catch {
			body = null;
		}
		throw errorFrom(response.status, body, response.headers);
	}
	const blob = await response.blob();
	const href = URL.createObjectURL(blob);
	const link = document.createElement('a');
	link.href = href;
	link.download = name;
	document.body.append(link);
	link.click();
	link.remove();
	setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

/** Import what a file held: the conversations made. */
export async function importConversations(payload: unknown): Promise<Conversation[]> {
	const page = await call(api.POST('/api/v1/conversations/import', { body: payload as Record<string, never> }));
	return page.items;
}
