/** My notes (`/api/v1/notes`): Markdown, standalone or attached to a conversation; thin calls over the
 * typed client, and the order a list keeps them in. */

import { api, call, type Schemas } from '$lib/api/client';

export type Note = Schemas['NotePublic'];
export type NoteDraft = { title: string; content: string };

/** Most recently changed first, as the platform lists them. */
export function noteOrder(a: Note, b: Note): number {
	return b.updated_at.localeCompare(a.updated_at) || b.id.localeCompare(a.id);
}

/** A list with `note` in it: replaced where it was, or added, then in order. */
export function upsertNote(notes: readonly Note[], note: Note): Note[] {
	return [note, ...notes.filter((one) => one.id !== note.id)].sort(noteOrder);
}

/** A title for a note written without one: its first line of text, shortened. */
export function titleFor(draft: NoteDraft): string {
	const title = draft.title.trim();
	if (title) return title.slice(0, 300);
	const line = draft.content
		.split('\n')
		.map((text) => text.replace(/^[#>*\-\s]+/, '').trim())
		.find((text) => text.length > 0);
	if (!line) return 'Untitled note';
	return line.length > 60 ? `${line.slice(0, 59)}…` : line;
}

export async function listNotes(conversationId: string | null, cursor: string | null = null): Promise<Schemas['Page_NotePublic_']> {
	const query: { conversation_id?: string; cursor?: string; limit: number } = { limit: 50 };
	if (conversationId) query.conversation_id = conversationId;
	if (cursor) query.cursor = cursor;
	return call(api.GET('/api/v1/notes', { params: { query } }));
}

export function getNote(id: string): Promise<Note> {
	return call(api.GET('/api/v1/notes/{note_id}', { params: { path: { note_id: id } } }));
}

export function createNote(draft: NoteDraft, conversationId: string | null): Promise<Note> {
	return call(api.POST('/api/v1/notes', { body: { title: titleFor(draft), content: draft.content, conversation_id: conversationId } }));
}

export function updateNote(id: string, draft: NoteDraft): Promise<Note> {
	return call(api.PATCH('/api/v1/notes/{note_id}', { params: { path: { note_id: id } }, body: { title: titleFor(draft), content: draft.content } }));
}

export async function deleteNote(id: string): Promise<void> {
	await call(api.DELETE('/api/v1/notes/{note_id}', { params: { path: { note_id: id } } }));
}
