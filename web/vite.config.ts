import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

// `npm run dev` proxies the API to a platform on its default address, so the UI can be worked on
// with hot reload against a real backend (AVOCADO_PLATFORM_URL to point elsewhere).
const platform = process.env.AVOCADO_PLATFORM_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
	plugins: [sveltekit()],
	server: { proxy: { '/api': platform, '/v1': platform } },
	// The plugin-timing report is advice for plugin authors, printed on every build of a slow machine.
	build: { rolldownOptions: { checks: { pluginTimings: false } } },
	test: { include: ['src/**/*.test.ts'], environment: 'node' }
});
