/** The app's keyboard shortcuts, as pure matching so they can be tested without a browser. */

export type Shortcut = 'search' | 'new-chat' | 'toggle-sidebar';

type Keys = Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'shiftKey' | 'altKey'>;

/** Ctrl on Linux and Windows, Cmd on a Mac: either counts, as in most web apps. */
export function shortcutOf(event: Keys): Shortcut | null {
	const mod = event.ctrlKey || event.metaKey;
	if (!mod || event.altKey) return null;
	const key = event.key.toLowerCase();
	if (key === 'k' && !event.shiftKey) return 'search';
	if (key === 'o' && event.shiftKey) return 'new-chat';
	if (key === 's' && event.shiftKey) return 'toggle-sidebar';
	return null;
}
