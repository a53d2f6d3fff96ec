/** Small helpers for the secrets the settings pages show once: a TOTP secret and a new API key. */

/** `JBSWY3DPEHPK3PXP` → `JBSW Y3DP EHPK 3PXP`: easier to type into an authenticator by hand. */
export function groupSecret(secret: string): string {
	return secret.replace(/\s+/g, '').replace(/(.{4})(?=.)/g, '$1 ');
}

/** What a person runs to try a new key: the platform's OpenAI-compatible API on this address. */
export function curlExample(origin: string, key: string, model: string | null): string {
	const body = JSON.stringify({ model: model ?? 'MODEL', messages: [{ role: 'user', content: 'Hello!' }] });
	return `curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer ${key}" \\\n  -H "Content-Type: application/json" \\\n  -d '${body}'`;
}
