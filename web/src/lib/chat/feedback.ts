/** Feedback on an answer (thumbs up or down, with an optional reason and comment) and share links
 * to a read-only copy of a conversation: thin calls over the typed client. */

import { api, call, type Schemas } from '$lib/api/client';
import { ApiError } from '$lib/errors';

export type Feedback = Schemas['FeedbackPublic'];
/** What a PUT sends (`preferred` defaults to false on the server). */
export type FeedbackGiven = Omit<Schemas['FeedbackGiven'], 'preferred'> & { preferred?: boolean };
export type Share = Schemas['SharePublic'];
export type NewShare = Schemas['ShareCreated'];
export type Shared = Schemas['SharedConversation'];

/** Reasons offered for a thumbs down (the user may also write a comment). */
export const DOWN_REASONS = ['Not correct', 'Not helpful', 'Incomplete', 'Harmful or offensive', 'Other'] as const;

const where = (conversationId: string, messageId: string) => ({
	params: { path: { conversation_id: conversationId, message_id: messageId } }
});

export function giveFeedback(conversationId: string, messageId: string, body: FeedbackGiven): Promise<Feedback> {
	return call(api.PUT('/api/v1/conversations/{conversation_id}/messages/{message_id}/feedback', { ...where(conversationId, messageId), body: { preferred: false, ...body } }));
}

export async function withdrawFeedback(conversationId: string, messageId: string): Promise<void> {
	await call(api.DELETE('/api/v1/conversations/{conversation_id}/messages/{message_id}/feedback', where(conversationId, messageId)));
}

export function share(conversationId: string): Promise<NewShare> {
	return call(api.POST('/api/v1/conversations/{conversation_id}/shares', { params: { path: { conversation_id: conversationId } } }));
}

export async function sharesOf(conversationId: string): Promise<Share[]> {
	const page = await call(api.GET('/api/v1/conversations/{conversation_id}/shares', { params: { path: { conversation_id: conversationId } } }));
	return page.items;
}

export async function revokeShare(shareId: string): Promise<void> {
	await call(api.DELETE('/api/v1/shares/{share_id}', { params: { path: { share_id: shareId } } }));
}

/** A shared conversation, or null when the link was revoked or never existed (404). */
export async function openShared(token: string): Promise<Shared | null> {
	try {
		return await call(api.GET('/api/v1/shared/{token}', { params: { path: { token } } }));
	} catch (error) {
		if (error instanceof ApiError && error.status === 404) return null;
		throw error;
	}
}
