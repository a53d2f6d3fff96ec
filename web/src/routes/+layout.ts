// A single page app: rendered in the browser only, served as static files by the platform.
export const ssr = false;
export const prerender = false;
