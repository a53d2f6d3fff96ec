/** Routes issue 18 asks of the platform that it does not have yet: two-factor enrolment and personal API
 * keys. The UI for them is built against the contract below and only shown when the platform's OpenAPI
 * lists these paths (features.svelte.ts). When the platform gains them, regenerate schema.d.ts
 * (scripts/web_api.py), move these calls to the typed `api` client and delete this file; a difference
 * between this contract and the platform's then fails `npm run check`.
 *
 * Contract (JSON; errors are {"detail"} as everywhere):
 *   GET    /api/v1/users/me/mfa                    → {totp_enabled, recovery_codes_left}
 *   POST   /api/v1/users/me/mfa/totp               → {secret, otpauth_uri}        (starts enrolment)
 *   POST   /api/v1/users/me/mfa/totp/confirm {code} → {recovery_codes: string[]}  (turns it on)
 *   DELETE /api/v1/users/me/mfa/totp {password}    → 204                          (turns it off)
 *   POST   /api/v1/users/me/mfa/recovery-codes {password} → {recovery_codes}      (a new set)
 *   GET    /api/v1/users/me/api-keys               → {items: ApiKey[], next_cursor}
 *   POST   /api/v1/users/me/api-keys {name}        → ApiKey & {key}               (the key, shown once)
 *   DELETE /api/v1/users/me/api-keys/{id}          → 204
 */

import { send } from './client';

export type MfaStatus = { totp_enabled: boolean; recovery_codes_left: number };
export type TotpEnrolment = { secret: string; otpauth_uri: string };
export type RecoveryCodes = { recovery_codes: string[] };
export type ApiKey = { id: string; name: string; prefix: string; created_at: string; last_used_at: string | null };
export type NewApiKey = ApiKey & { key: string };

export const mfa = {
	status: () => send<MfaStatus>('GET', '/api/v1/users/me/mfa'),
	start: () => send<TotpEnrolment>('POST', '/api/v1/users/me/mfa/totp'),
	confirm: (code: string) => send<RecoveryCodes>('POST', '/api/v1/users/me/mfa/totp/confirm', { code }),
	disable: (password: string) => send<void>('DELETE', '/api/v1/users/me/mfa/totp', { password }),
	newCodes: (password: string) => send<RecoveryCodes>('POST', '/api/v1/users/me/mfa/recovery-codes', { password })
};

export const apiKeys = {
	list: (cursor: string | null) =>
		send<{ items: ApiKey[]; next_cursor: string | null }>(
			'GET',
			`/api/v1/users/me/api-keys${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`
		),
	create: (name: string) => send<NewApiKey>('POST', '/api/v1/users/me/api-keys', { name }),
	revoke: (id: string) => send<void>('DELETE', `/api/v1/users/me/api-keys/${encodeURIComponent(id)}`)
};

/** `JBSWY3DPEHPK3PXP` → `JBSW Y3DP EHPK 3PXP`: easier to type into an authenticator by hand. */
export function groupSecret(secret: string): string {
	return secret.replace(/\s+/g, '').replace(/(.{4})(?=.)/g, '$1 ');
}

/** What a person runs to try a new key: the platform's OpenAI-compatible API on this address. */
export function curlExample(origin: string, key: string, model: string | null): string {
	const body = JSON.stringify({ model: model ?? 'MODEL', messages: [{ role: 'user', content: 'Hello!' }] });
	return `curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer ${key}" \\\n  -H "Content-Type: application/json" \\\n  -d '${body}'`;
}
