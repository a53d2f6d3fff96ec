/** Where to go after signing in: only a path of this site (never another origin: no open redirect). */
export function safeNext(next: string | null | undefined, fallback = '/'): string {
	if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return fallback;
	return next;
}

/** The sign-in page's address that comes back to `path` afterwards. */
export function signInFor(path: string): string {
	return path === '/' ? '/signin' : `/signin?next=${encodeURIComponent(path)}`;
}
