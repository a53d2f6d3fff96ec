// The theme before the first paint (no flash of the wrong one): the choice stored by
// src/lib/theme.ts, else the system's. A file rather than an inline script, for the CSP.
try {
	const choice = localStorage.getItem('avocado.theme');
	if (choice === 'light' || choice === 'dark') document.documentElement.dataset.theme = choice;
} catch {
	// storage off: the system's theme
}
