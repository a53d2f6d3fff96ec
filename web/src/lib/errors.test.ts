import { describe, expect, it } from 'vitest';
import { ApiError, errorFrom, fieldOf, formErrors, messageOf, offline, sentence } from './errors';

describe('errorFrom', () => {
	it('takes the detail and capitalises it', () => {
		const error = errorFrom(401, { detail: 'wrong e-mail or password' });
		expect(error.status).toBe(401);
		expect(error.message).toBe('Wrong e-mail or password');
	});

	it('maps each validation problem to its field, without repeating the field name', () => {
		const body = {
			detail: 'email: value is not a valid email address; password: must be at least 8 characters',
			errors: [
				{ field: 'email', message: 'value is not a valid email address' },
				{ field: 'password', message: 'password: must be at least 8 characters' }
			]
		};
		const error = errorFrom(422, body);
		expect(error.fields).toEqual({
			email: 'Value is not a valid email address',
			password: 'Must be at least 8 characters'
		});
	});

	it('reads Retry-After from a 429', () => {
		const error = errorFrom(429, { detail: 'too many failed attempts: try again in 4 s' }, new Headers({ 'Retry-After': '4' }));
		expect(error.retryAfter).toBe(4);
	});

	it('falls back to words for the status when the body says nothing', () => {
		expect(errorFrom(502, null).message).toMatch(/model server/);
		expect(errorFrom(504, 'gateway timeout').message).toMatch(/server failed/);
		expect(errorFrom(418, {}).message).toBe('The request was refused.');
	});
});

describe('formErrors', () => {
	it('puts a detail that names a known field under that field', () => {
		const error = errorFrom(403, { detail: 'current_password: wrong password' });
		expect(formErrors(error, ['current_password', 'new_password'])).toEqual({
			fields: { current_password: 'Wrong password' },
			general: null
		});
	});

	it('keeps a message that names no field above the form', () => {
		const error = errorFrom(403, { detail: 'this account is disabled: ask an administrator' });
		expect(formErrors(error, ['email', 'password'])).toEqual({
			fields: {},
			general: 'This account is disabled: ask an administrator'
		});
	});

	it('shows the whole message when a problem is about a field the form lacks', () => {
		const error = errorFrom(422, { detail: 'cookie: must be a boolean', errors: [{ field: 'cookie', message: 'must be a boolean' }] });
		expect(formErrors(error, ['email']).general).toBe('Cookie: must be a boolean');
	});

	it('says something for errors that are not from the API', () => {
		expect(formErrors(new Error('boom'), ['email']).general).toBe('Boom');
		expect(formErrors(offline(), []).general).toMatch(/Cannot reach the server/);
	});
});

describe('small helpers', () => {
	it('sentence capitalises and trims', () => {
		expect(sentence('  hello there ')).toBe('Hello there');
		expect(sentence('')).toBe('');
	});

	it('fieldOf only names known fields', () => {
		expect(fieldOf('email: bad', ['email'])).toBe('email');
		expect(fieldOf('note: try again in 4 s', ['email'])).toBeNull();
		expect(fieldOf('no field here', ['email'])).toBeNull();
	});

	it('messageOf handles anything thrown', () => {
		expect(messageOf(new ApiError(400, 'Bad'))).toBe('Bad');
		expect(messageOf('a string')).toBe('Something went wrong. Try again.');
	});
});
