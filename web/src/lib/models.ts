/** The model picker's memory and labels. */

import { api, call, type Model } from '$lib/api/client';

const KEY = 'avocado.model';

let cached: { at: number; models: Promise<Model[]> } | null = null;

/** Every model this user may use (GET /api/v1/models, all its pages); several pickers on one page
 * share one request (kept for 30 s). */
export function listModels(): Promise<Model[]> {
	if (cached && Date.now() - cached.at < 30_000) return cached.models;
	const models = fetchModels();
	cached = { at: Date.now(), models };
	models.catch(() => {
		if (cached?.models === models) cached = null;
	});
	return models;
}

async function fetchModels(): Promise<Model[]> {
	const all: Model[] = [];
	let cursor: string | null = null;
	do {
		const page: { items: Model[]; next_cursor: string | null } = await call(
			api.GET('/api/v1/models', { params: { query: cursor ? { cursor } : {} } })
		);
		all.push(...page.items);
		cursor = page.next_cursor;
	} while (cursor);
	return all;
}

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

/** The model to select: the first of `wanted` still offered (the one remembered in this browser, then
 * my default model), else the first listed. */
export function pickModel(models: readonly Model[], ...wanted: (string | null | undefined)[]): string | null {
	for (const name of wanted) {
		if (name && models.some((model) => model.name === name)) return name;
	}
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
