/** What went wrong with an API call, in words a person reads, and where (the form field) when known.
 *
 * The platform answers every error as `{"detail": "..."}`; a 422 adds `errors: [{field, message}]`
 * so each message can sit next to its field. A 429 carries `Retry-After`. */

export type FieldErrors = Record<string, string>;

export class ApiError extends Error {
	readonly status: number;
	readonly fields: FieldErrors;
	readonly retryAfter: number | null;

	constructor(status: number, message: string, fields: FieldErrors = {}, retryAfter: number | null = null) {
		super(message);
		this.name = 'ApiError';
		this.status = status;
		this.fields = fields;
		this.retryAfter = retryAfter;
	}
}

/** `"email: value is not a valid email address"` → `"Value is not a valid email address"`. */
export function sentence(text: string): string {
	const trimmed = text.trim();
	if (!trimmed) return trimmed;
	return trimmed[0]!.toUpperCase() + trimmed.slice(1);
}

function stripField(message: string, field: string): string {
	const prefix = `${field}: `;
	return message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

/** The field a message like `"current_password: wrong password"` names, if it names one of `known`. */
export function fieldOf(message: string, known: readonly string[]): string | null {
	const match = /^([a-z_][a-z0-9_.]*): /.exec(message);
	if (match && known.includes(match[1]!)) return match[1]!;
	return null;
}

const FALLBACK: Record<number, string> = {
	401: 'You are signed out. Sign in again to continue.',
	403: 'You may not do this.',
	404: 'This was not found. It may have been removed.',
	413: 'This is too large to send.',
	429: 'Too many attempts. Wait a moment, then try again.',
	500: 'The server failed. Try again; if it keeps failing, tell your administrator.',
	502: 'The model server did not answer. Try again in a moment.',
	503: 'The server is busy or restarting. Try again in a moment.'
};

/** An ApiError from a response and its parsed body (anything: JSON, text, nothing). */
export function errorFrom(status: number, body: unknown, headers?: Headers): ApiError {
	let detail = '';
	const fields: FieldErrors = {};
	if (body && typeof body === 'object') {
		const record = body as Record<string, unknown>;
		if (typeof record.detail === 'string') detail = record.detail;
		if (Array.isArray(record.errors)) {
			for (const item of record.errors) {
				if (item && typeof item === 'object') {
					const { field, message } = item as Record<string, unknown>;
					if (typeof field === 'string' && typeof message === 'string' && !(field in fields)) {
						fields[field] = sentence(stripField(message, field));
					}
				}
			}
		}
	}
	const retry = Number(headers?.get('retry-after'));
	const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null;
	const fallback = FALLBACK[status] ?? (status >= 500 ? FALLBACK[500]! : 'The request was refused.');
	return new ApiError(status, detail ? sentence(detail) : fallback, fields, retryAfter);
}

/** A network failure (the server is down or unreachable) as an ApiError with status 0. */
export function offline(): ApiError {
	return new ApiError(0, 'Cannot reach the server. Check your connection, then try again.');
}

/** The message to show for anything thrown. */
export function messageOf(error: unknown): string {
	if (error instanceof ApiError) return error.message;
	if (error instanceof Error && error.message) return sentence(error.message);
	return 'Something went wrong. Try again.';
}

export type FormErrors = { fields: FieldErrors; general: string | null };

/** An error split for a form: messages for the fields it has, the rest as one message above it.
 * The platform names the field in `errors` (validation) or at the start of `detail`
 * (`"new_password: is too common: ..."`). */
export function formErrors(error: unknown, known: readonly string[]): FormErrors {
	if (!(error instanceof ApiError)) return { fields: {}, general: messageOf(error) };
	const fields: FieldErrors = {};
	for (const [field, message] of Object.entries(error.fields)) {
		if (known.includes(field)) fields[field] = message;
	}
	const named = fieldOf(error.message.charAt(0).toLowerCase() + error.message.slice(1), known);
	if (named && !(named in fields)) {
		fields[named] = sentence(error.message.slice(named.length + 2));
	}
	const unplaced = Object.keys(error.fields).some((field) => !known.includes(field));
	const general = Object.keys(fields).length === 0 || unplaced ? error.message : null;
	return { fields, general };
}
