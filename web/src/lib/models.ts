/** The model picker's memory and labels. */

import type { Model } from '$lib/api/client';

const KEY = 'avocado.model';

export function rememberedModel(): string | null {
	try {
		return localStorage.getItem(KEY);
	} catch {
		return null;
	}
}

export function rememberModel(name: string): void {
	try {
		localStorage.setItem(KEY, name);
	} catch {
		// private mode: the choice lasts for this page
	}
}

/** The model to select: the remembered one while it is still offered, else the first. */
export function pickModel(models: readonly Model[], remembered: string | null): string | null {
	if (remembered && models.some((model) => model.name === remembered)) return remembered;
	return models[0]?.name ?? null;
}

/** `"135M · Q4_1"` from what the model server reports; empty when it reports nothing. */
export function modelDetails(model: Model): string {
	const { parameter_size, quantization_level } = model.details;
	return [parameter_size, quantization_level].filter(Boolean).join(' · ');
}

export function formatBytes(bytes: number | null | undefined): string {
	if (bytes === null || bytes === undefined) return '';
	const units = ['B', 'KB', 'MB', 'GB', 'TB'];
	let value = bytes;
	let unit = 0;
	while (value >= 1000 && unit < units.length - 1) {
		value /= 1000;
		unit += 1;
	}
	return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}
