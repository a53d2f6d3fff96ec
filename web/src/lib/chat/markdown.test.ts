import { describe, expect, it } from 'vitest';
import { highlight, renderMarkdown } from './markdown';

describe('renderMarkdown', () => {
	it('renders lists, tables and emphasis', () => {
		const html = renderMarkdown('**bold** and *it*\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n');
		expect(html).toContain('<strong>bold</strong>');
		expect(html).toContain('<li>one</li>');
		expect(html).toContain('<table>');
		expect(html).toContain('<td>2</td>');
	});

	it('highlights a fenced block and gives it a copy button with its language', () => {
		const html = renderMarkdown('```python\ndef f(x):\n    return x\n```\n');
		expect(html).toContain('class="code-block"');
		expect(html).toContain('<span>python</span>');
		expect(html).toContain('data-copy');
		expect(html).toContain('<span class="hljs-keyword">def</span>');
	});

	it('shows code still being written (an unclosed fence) as code', () => {
		const html = renderMarkdown('Here:\n\n```js\nconst a = 1;');
		expect(html).toContain('<pre><code class="hljs language-js">');
		expect(html).toContain('<span class="hljs-keyword">const</span>');
	});

	it('escapes raw HTML and code in unknown languages', () => {
		expect(renderMarkdown('<script>alert(1)</script>')).not.toContain('<script>');
		expect(renderMarkdown('```brainfuck\n<b>\n```')).toContain('&lt;b&gt;');
	});

	it('knows the usual aliases', () => {
		expect(highlight('echo hi', 'sh')).toContain('hljs-built_in');
		expect(highlight('x', '')).toBe('x');
	});
});
