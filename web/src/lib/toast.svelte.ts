/** Short messages that confirm an action done away from where it started (copied, saved, revoked). */

export type ToastKind = 'info' | 'success' | 'error';
export type Toast = { id: number; message: string; kind: ToastKind };

class Toasts {
	items: Toast[] = $state([]);
	#next = 1;

	show(message: string, kind: ToastKind = 'info', ms = kind === 'error' ? 8000 : 4000): number {
		const id = this.#next++;
		this.items = [...this.items, { id, message, kind }];
		if (ms > 0) setTimeout(() => this.dismiss(id), ms);
		return id;
	}

	dismiss(id: number): void {
		this.items = this.items.filter((toast) => toast.id !== id);
	}
}

export const toasts = new Toasts();
