/** Who is signed in, and their tokens.
 *
 * The access token lives in memory only (never in storage a script could read later); the refresh
 * token lives in the platform's HttpOnly cookie, which this page cannot read at all. A reload or a
 * new tab gets a fresh access token from `POST /api/v1/auth/refresh`, which needs the cookie plus the
 * `avocado_csrf` cookie's value echoed in `X-CSRF-Token` (double submit).
 *
 * Refresh tokens rotate on every use, and presenting a spent one ends the whole session (RFC 9700),
 * so two tabs must never refresh at once with the same cookie: refreshes are serialized across tabs
 * with a Web Lock (and within a tab by one shared promise). Tabs tell each other about sign-in and
 * sign-out over a BroadcastChannel. */

import { anon, api, call, useAuthorizedFetch, type User } from '$lib/api/client';

const CSRF_COOKIE = 'avocado_csrf';
const CSRF_HEADER = 'X-CSRF-Token';
const LOCK = 'avocado.refresh';
const CHANNEL = 'avocado.auth';
const RECHECK_MS = 15_000;

class Auth {
	/** The signed-in user; null when signed out. */
	user: User | null = $state(null);
	/** False until the first attempt to restore a session (from the cookie) has finished. */
	ready = $state(false);
	/** Why the last session ended, when it was not the user's own doing. */
	ended: string | null = $state(null);
}

export const auth = new Auth();

let accessToken: string | null = null;
let refreshing: Promise<boolean> | null = null;
let lastCheck = 0;
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;

export function readCookie(cookies: string, name: string): string | null {
	for (const part of cookies.split(';')) {
		const [key, ...value] = part.trim().split('=');
		if (key === name) return decodeURIComponent(value.join('='));
	}
	return null;
}

function csrfToken(): string | null {
	return typeof document === 'undefined' ? null : readCookie(document.cookie, CSRF_COOKIE);
}

function csrfHeaders(): Record<string, string> {
	return { [CSRF_HEADER]: csrfToken() ?? '' };
}

async function locked<T>(work: () => Promise<T>): Promise<T> {
	if (typeof navigator !== 'undefined' && navigator.locks) return navigator.locks.request(LOCK, work);
	return storageLocked(work);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Holder = { id: string; until: number };

/** Web Locks exist only in secure contexts (https, localhost); a platform reached over plain http on a
 * LAN has none. There, tabs take turns through localStorage: claim the lock, wait for a competing
 * claim to land, and go ahead only if the claim is still ours. A claim lapses after 5 s, so a tab
 * closed mid-refresh blocks no one for long. */
export async function storageLocked<T>(work: () => Promise<T>, storage: Storage = localStorage): Promise<T> {
	const id = Math.random().toString(36).slice(2);
	const read = (): Holder | null => {
		try {
			return JSON.parse(storage.getItem(LOCK) ?? 'null') as Holder | null;
		} catch {
			return null;
		}
	};
	const deadline = Date.now() + 10_000;
	while (Date.now() < deadline) {
		const held = read();
		if (held === null || held.until < Date.now()) {
			storage.setItem(LOCK, JSON.stringify({ id, until: Date.now() + 5_000 }));
			await sleep(40);
			if (read()?.id === id) {
				try {
					return await work();
				} finally {
					if (read()?.id === id) storage.removeItem(LOCK);
				}
			}
		}
		await sleep(50 + Math.random() * 100);
	}
	return work(); // the lock stayed taken for 10 s: a stuck tab must not stop this one for good
}

async function refreshNow(): Promise<boolean> {
	if (!csrfToken()) return false; // never signed in with a cookie in this browser
	try {
		const { data, response } = await anon.POST('/api/v1/auth/refresh', { headers: csrfHeaders() });
		if (response.ok && data) {
			accessToken = data.access_token;
			return true;
		}
	} catch {
		return false; // offline: keep what we have; the next call reports it
	}
	accessToken = null;
	return false;
}

/** A new access token from the refresh cookie; false when there is no session to refresh. */
export function refresh(): Promise<boolean> {
	refreshing ??= locked(refreshNow).finally(() => {
		refreshing = null;
	});
	return refreshing;
}

function withToken(request: Request): Request {
	if (accessToken) request.headers.set('Authorization', `Bearer ${accessToken}`);
	return request;
}

/** The fetch of the typed client: the bearer token, and one refresh-and-retry on a 401. */
async function authorizedFetch(request: Request): Promise<Response> {
	const spare = request.clone();
	const response = await fetch(withToken(request));
	if (response.status !== 401 || auth.user === null) return response;
	if (await refresh()) return fetch(withToken(spare));
	ended('Your session has ended. Sign in again to continue.');
	return response;
}

useAuthorizedFetch(authorizedFetch);

function ended(reason: string | null): void {
	accessToken = null;
	auth.user = null;
	auth.ended = reason;
}

export async function loadMe(): Promise<User> {
	const user = await call(api.GET('/api/v1/users/me'));
	auth.user = user;
	lastCheck = Date.now();
	return user;
}

/** On start: a session from the cookie, if this browser has one. */
export async function restore(): Promise<void> {
	try {
		if (await refresh()) await loadMe();
	} catch {
		auth.user = null;
	} finally {
		auth.ready = true;
	}
}

export type SignIn = { kind: 'done'; user: User } | { kind: 'mfa'; mfaToken: string };

async function started(accessTokenGiven: string): Promise<User> {
	accessToken = accessTokenGiven;
	auth.ended = null;
	const user = await loadMe();
	channel?.postMessage({ type: 'signed-in' });
	return user;
}

/** Sign in with e-mail and password; `mfa` when the account asks for a second factor next. */
export async function signIn(email: string, password: string): Promise<SignIn> {
	const answer = await call(anon.POST('/api/v1/auth/login', { body: { email, password, cookie: true } }));
	if ('mfa_required' in answer) return { kind: 'mfa', mfaToken: answer.mfa_token };
	return { kind: 'done', user: await started(answer.access_token) };
}

/** The second step of a two-factor sign-in: login's `mfa_token` and a TOTP code or a recovery code. */
export async function verifySecondFactor(mfaToken: string, code: string): Promise<User> {
	const answer = await call(anon.POST('/api/v1/auth/mfa', { body: { mfa_token: mfaToken, code, cookie: true } }));
	return started(answer.access_token);
}

/** Sign out here: the session ends on the server and the cookies go. */
export async function signOut(): Promise<void> {
	try {
		await anon.POST('/api/v1/auth/logout', { headers: csrfHeaders() });
	} catch {
		// offline: the session stays valid on the server until it expires, but this browser forgets it
	}
	ended(null);
	channel?.postMessage({ type: 'signed-out' });
}

/** This browser's session ended on the server (sign out everywhere, a revoke from elsewhere). */
export function sessionEnded(reason: string | null): void {
	ended(reason);
	channel?.postMessage({ type: 'signed-out' });
}

/** Check that the session still holds (when the tab comes back into view), at most every 15 s. */
export async function recheck(): Promise<void> {
	if (auth.user === null || Date.now() - lastCheck < RECHECK_MS) return;
	lastCheck = Date.now();
	try {
		await loadMe();
	} catch {
		// a 401 already ended the session (authorizedFetch); anything else is not about the session
	}
}

channel?.addEventListener('message', (event: MessageEvent<{ type?: string }>) => {
	if (event.data?.type === 'signed-out' && auth.user !== null) ended('You signed out in another tab.');
	if (event.data?.type === 'signed-in' && auth.user === null) void restore();
});
