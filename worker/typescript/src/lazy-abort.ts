// lazy-abort.ts — an AbortController whose AbortSignal is made only when someone asks for it:
// most handlers never read ctx.signal, and a controller with its signal costs per request.
// Owns: whether the request was aborted and why, and the signal that says so once it exists.
// Must never: hand out a signal that disagrees with `aborted` (a signal made after the abort is
// already aborted, with the same reason), or abort twice.

export class LazyAbort {
  private controller: AbortController | null = null;
  private why: unknown = undefined;
  /** Whether abort() was called. */
  aborted = false;

  /** The signal, made on first use; aborted with abort()'s reason if that came first. */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  /** Aborts (once): the signal, if made, fires its 'abort' listeners now. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.why = reason;
    this.controller?.abort(reason);
  }
}
