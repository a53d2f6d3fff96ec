import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		// A single page app: every path the platform does not own gets index.html, and the
		// router in the browser picks the page (so /c/<id> works on reload and from a pasted link).
		adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html', strict: true }),
		alias: { $components: 'src/lib/components' }
	}
};

export default config;
