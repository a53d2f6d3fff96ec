/** The typed API client: openapi-fetch over the types generated from the platform's OpenAPI document
 * (schema.d.ts, by scripts/web_api.py), so a renamed route or field fails `npm run check`.
 *
 * `api` sends the access token and, on a 401, refreshes the session once and retries; `anon` is for
 * the routes that need no token (sign-up, sign-in, refresh, reset). */

import createClient from 'openapi-fetch';
import { errorFrom, offline } from '$lib/errors';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type User = Schemas['UserPublic'];
export type SessionInfo = Schemas['SessionPublic'];
export type Model = Schemas['ModelPublic'];
export type AuditEvent = Schemas['AuditEventPublic'];
export type Role = User['role'];
export type Status = User['status'];
export type SignupPolicy = Schemas['SettingsPublic']['signup_policy'];
export type MfaStatus = Schemas['MfaStatusPublic'];
export type MfaEnrolment = Schemas['MfaEnrolment'];
export type ApiKey = Schemas['ApiKeyPublic'];
export type NewApiKey = Schemas['ApiKeyCreated'];
export type Preferences = Schemas['PreferencesPublic'];
export type Conversation = Schemas['ConversationPublic'];
export type ConversationDetail = Schemas['ConversationDetail'];
export type ConversationUpdate = Schemas['ConversationUpdate'];
export type Folder = Schemas['FolderPublic'];
export type GenerationOptions = Schemas['Options'];
export type Avatar = Schemas['AvatarPublic'];
export type AuthConfig = Schemas['AuthConfig'];
export type GatewayNode = Schemas['GatewayNodePublic'];
export type UserUsage = Schemas['UsagePublic'];

type Fetch = (request: Request) => Promise<Response>;

let authorizedFetch: Fetch = (request) => fetch(request);

/** Installed by auth.svelte.ts (the client must not import the session, which imports the client). */
export function useAuthorizedFetch(fetcher: Fetch): void {
	authorizedFetch = fetcher;
}

// Relative URLs: the UI is always served by the platform it talks to (or the dev server's proxy).
const base = typeof location === 'undefined' ? 'http://localhost' : location.origin;

/** A request with the session's token (and its refresh), for what the typed client does not cover:
 * streamed answers, routes newer than the generated types. */
export function authorized(request: Request): Promise<Response> {
	return authorizedFetch(request);
}

export const api = createClient<paths>({ baseUrl: base, fetch: (request) => authorizedFetch(request) });
export const anon = createClient<paths>({ baseUrl: base, credentials: 'same-origin' });

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The data of a call, or an ApiError with the server's words (or a network failure's). */
export async function call<T>(pending: Promise<Answer<T>>): Promise<T> {
	let answer: Answer<T>;
	try {
		answer = await pending;
	} catch (error) {
		if (error instanceof DOMException && error.name === 'AbortError') throw error;
		throw offline();
	}
	if (!answer.response.ok) throw errorFrom(answer.response.status, answer.error, answer.response.headers);
	return answer.data as T;
}
