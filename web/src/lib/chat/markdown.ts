/** Markdown to HTML for answers, as they stream: marked (GitHub-flavoured: tables, lists, fenced
 * code), code highlighted by highlight.js (a few common languages, to keep the bundle small), and each
 * code block given a header with its language and a copy button. An unclosed fence (an answer still
 * being written) renders as code so far.
 *
 * The HTML still goes through DOMPurify in the browser before it is shown (`Markdown.svelte`): a
 * model's answer is untrusted text. */

import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import css from 'highlight.js/lib/languages/css';
import go from 'highlight.js/lib/languages/go';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { Marked, type Tokens } from 'marked';

const LANGUAGES = { bash, css, go, javascript, json, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
hljs.registerAliases(['sh', 'shell', 'zsh', 'console'], { languageName: 'bash' });
hljs.registerAliases(['js', 'jsx', 'mjs'], { languageName: 'javascript' });
hljs.registerAliases(['ts', 'tsx'], { languageName: 'typescript' });
hljs.registerAliases(['py'], { languageName: 'python' });
hljs.registerAliases(['html', 'svg'], { languageName: 'xml' });
hljs.registerAliases(['yml'], { languageName: 'yaml' });
hljs.registerAliases(['rs'], { languageName: 'rust' });

export function escapeHtml(text: string): string {
	return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Highlighted HTML of `code`, by its language when known (else as plain, escaped text). */
export function highlight(code: string, language: string): string {
	const name = language.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
	if (name && hljs.getLanguage(name)) return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
	return escapeHtml(code);
}

const marked = new Marked({
	gfm: true,
	breaks: false,
	renderer: {
		code({ text, lang }: Tokens.Code): string {
			const language = (lang ?? '').trim().split(/\s+/)[0] ?? '';
			const label = language ? escapeHtml(language) : 'code';
			return (
				`<div class="code-block"><div class="code-head"><span>${label}</span>` +
				`<button type="button" class="copy-code" data-copy>Copy</button></div>` +
				`<pre><code class="hljs${language ? ` language-${escapeHtml(language)}` : ''}">${highlight(text, language)}</code></pre></div>`
			);
		},
		html({ text }: Tokens.HTML | Tokens.Tag): string {
			return escapeHtml(text); // raw HTML in an answer is shown, not run
		}
	}
});

/** The HTML of an answer's markdown (not yet sanitised: see the module's note). */
export function renderMarkdown(source: string): string {
	let text = source;
	const fences = text.match(/^ {0,3}(```|~~~)/gm)?.length ?? 0;
	if (fences % 2 === 1) text += '\n```'; // still streaming inside a code block
	return marked.parse(text, { async: false });
}
