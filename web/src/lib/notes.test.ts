import { describe, expect, it } from 'vitest';
import type { Schemas } from './api/client';
import { hitHref } from './chat/conversations.svelte';
import { titleFor, upsertNote, type Note } from './notes';

function note(id: string, updated: string): Note {
	return { id, title: id, content: '', conversation_id: null, created_at: updated, updated_at: updated };
}

function hit(extra: Partial<Schemas['SearchHit']>): Schemas['SearchHit'] {
	return { kind: 'message', conversation_id: 'c1', message_id: null, note_id: null, title: 't', snippet: '', score: 1, ...extra };
}

describe('notes', () => {
	it('a note without a title takes its first line of text', () => {
		expect(titleFor({ title: '  Shopping ', content: 'eggs' })).toBe('Shopping');
		expect(titleFor({ title: '', content: '\n## Plan for Monday\n- eggs' })).toBe('Plan for Monday');
		expect(titleFor({ title: '', content: '' })).toBe('Untitled note');
		expect(titleFor({ title: '', content: 'x'.repeat(100) })).toHaveLength(60);
	});

	it('keeps the list newest change first, a changed note moved up, not repeated', () => {
		const list = [note('b', '2026-12-02T00:00:00Z'), note('a', '2026-12-01T00:00:00Z')];
		expect(upsertNote(list, note('a', '2026-12-03T00:00:00Z')).map((n) => n.id)).toEqual(['a', 'b']);
		expect(upsertNote(list, note('c', '2026-11-01T00:00:00Z')).map((n) => n.id)).toEqual(['b', 'a', 'c']);
	});

	it('search results open a note on its page, a message marked in its conversation', () => {
		expect(hitHref(hit({ kind: 'note', conversation_id: null, note_id: 'n1' }))).toBe('/notes/n1');
		expect(hitHref(hit({ kind: 'note', note_id: 'n2' }))).toBe('/notes/n2');
		expect(hitHref(hit({ message_id: 'm1' }))).toBe('/c/c1#m-m1');
		expect(hitHref(hit({ kind: 'title' }))).toBe('/c/c1');
	});
});
