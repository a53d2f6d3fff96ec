import { describe, expect, it } from 'vitest';
import { exportUrl, fileName, readExport } from './transfer';

describe('export and import', () => {
	it('names a download after the conversation', () => {
		expect(fileName('Dragons & their hoards!', 'json')).toBe('dragons-their-hoards.json');
		expect(fileName('Été à Paris', 'markdown')).toBe('ete-a-paris.md');
		expect(fileName('???', 'json')).toBe('conversation.json');
	});

	it('asks for one conversation or all of mine, in either format', () => {
		expect(exportUrl('c 1', 'markdown')).toBe('/api/v1/conversations/c%201/export?format=markdown');
		expect(exportUrl(null, 'json')).toBe('/api/v1/conversations/export?format=json');
	});

	it('reads our export and Open WebUI’s, and says what is wrong with other files', () => {
		expect(readExport('{"format":"avocado.conversations","version":1,"conversations":[{},{}]}')).toMatchObject({ count: 2 });
		const webui = { title: 'Hi', chat: { history: { messages: {}, currentId: null } } };
		expect(readExport(JSON.stringify([webui, webui]))).toMatchObject({ count: 2 });
		expect(readExport(JSON.stringify(webui.chat))).toMatchObject({ count: 1 });
		expect(readExport('not json')).toEqual({ error: expect.stringMatching(/not JSON/) });
		expect(readExport('{"format":"avocado.conversations"}')).toEqual({ error: expect.stringMatching(/no conversations/) });
		expect(readExport('[{"title":"x"}]')).toEqual({ error: expect.stringMatching(/not an export/) });
		expect(readExport('[]')).toEqual({ error: expect.stringMatching(/not an export/) });
	});
});
