import { describe, expect, it } from 'vitest';
import type { Conversation, Folder } from '$lib/api/client';
import { folderTree, listOrder } from './conversations.svelte';
import { chatEvent } from './stream';

function folder(id: string, name: string, parent: string | null = null): Folder {
	return { id, name, parent_id: parent, created_at: '2026-12-01T00:00:00Z' };
}

function conversation(id: string, updated: string, pinned = false): Conversation {
	return {
		id,
		title: id,
		model: 'm',
		system: null,
		options: {},
		folder_id: null,
		pinned,
		archived: false,
		summarise: false,
		summary: null,
		tags: [],
		message_count: 0,
		leaf_id: null,
		created_at: updated,
		updated_at: updated
	};
}

describe('folderTree', () => {
	it('lists folders depth first, by name, with their depth', () => {
		const tree = folderTree([folder('b', 'Work'), folder('a', 'Home'), folder('c', 'Taxes', 'a'), folder('d', 'Old', 'c')]);
		expect(tree.map(([f, depth]) => `${depth}:${f.name}`)).toEqual(['0:Home', '1:Taxes', '2:Old', '0:Work']);
	});

	it('puts a folder whose parent is unknown at the top', () => {
		expect(folderTree([folder('x', 'Orphan', 'gone')]).map(([f, depth]) => [f.name, depth])).toEqual([['Orphan', 0]]);
	});
});

describe('listOrder', () => {
	it('pinned first, then the newest', () => {
		const items = [
			conversation('old', '2026-12-01T10:00:00Z'),
			conversation('new', '2026-12-07T10:00:00Z'),
			conversation('pinned', '2026-11-01T10:00:00Z', true)
		];
		expect(items.sort(listOrder).map((c) => c.id)).toEqual(['pinned', 'new', 'old']);
	});
});

describe('chatEvent', () => {
	it('parses the events it knows and skips the rest', () => {
		expect(chatEvent('delta', '{"message_id":"m","content":"hi"}', 'm:2')).toEqual({
			type: 'delta',
			data: { message_id: 'm', content: 'hi' },
			id: 'm:2'
		});
		expect(chatEvent('tool_step', '{}', 'x')).toBeNull();
		expect(chatEvent('delta', 'not json', 'x')).toBeNull();
	});
});
