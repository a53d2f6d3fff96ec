/** Light and dark themes: the system's by default, or the one the user picked (kept in this browser). */

export type ThemeChoice = 'system' | 'light' | 'dark';
export type Theme = 'light' | 'dark';

const KEY = 'avocado.theme';

export function resolveTheme(choice: ThemeChoice, systemDark: boolean): Theme {
	if (choice === 'system') return systemDark ? 'dark' : 'light';
	return choice;
}

export function parseChoice(value: string | null | undefined): ThemeChoice {
	return value === 'light' || value === 'dark' ? value : 'system';
}

export function storedChoice(): ThemeChoice {
	try {
		return parseChoice(localStorage.getItem(KEY));
	} catch {
		return 'system';
	}
}

/** Remember `choice` and apply it now (app.html applies it before the first paint on later loads). */
export function applyChoice(choice: ThemeChoice): void {
	try {
		if (choice === 'system') localStorage.removeItem(KEY);
		else localStorage.setItem(KEY, choice);
	} catch {
		// storage may be off (private mode): the choice then lasts for this page only
	}
	const root = document.documentElement;
	if (choice === 'system') delete root.dataset.theme;
	else root.dataset.theme = choice;
}

export function systemPrefersDark(): boolean {
	return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
}
