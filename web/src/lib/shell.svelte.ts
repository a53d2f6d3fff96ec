/** The app shell's state: is the sidebar open. Remembered on wide screens; on a phone it starts closed
 * and lies over the page. */

const KEY = 'avocado.sidebar';
const NARROW = '(max-width: 768px)';

function narrow(): boolean {
	return typeof matchMedia === 'function' && matchMedia(NARROW).matches;
}

class Shell {
	sidebarOpen = $state(true);
	narrow = $state(false);

	start(): () => void {
		this.narrow = narrow();
		let stored: string | null = null;
		try {
			stored = localStorage.getItem(KEY);
		} catch {
			stored = null;
		}
		this.sidebarOpen = !this.narrow && stored !== 'closed';
		if (typeof matchMedia !== 'function') return () => {};
		const query = matchMedia(NARROW);
		const changed = () => {
			this.narrow = query.matches;
			if (this.narrow) this.sidebarOpen = false;
		};
		query.addEventListener('change', changed);
		return () => query.removeEventListener('change', changed);
	}

	toggle(open = !this.sidebarOpen): void {
		this.sidebarOpen = open;
		if (this.narrow) return;
		try {
			localStorage.setItem(KEY, open ? 'open' : 'closed');
		} catch {
			// private mode
		}
	}

	/** After following a link on a phone, the page is what matters: the sidebar gets out of the way. */
	navigated(): void {
		if (this.narrow) this.sidebarOpen = false;
	}
}

export const shell = new Shell();
