/**
 * eventemitter3 with isolated listeners: one throwing listener is reported and the others still
 * run. Used for host and engine events.
 */
import { EventEmitter } from 'eventemitter3';

export class SafeEmitter<Events extends EventEmitter.ValidEventTypes> extends EventEmitter<Events> {
  /** Called with listener failures; the default writes them to stderr. */
  protected onListenerError(event: string | symbol, err: unknown): void {
    process.stderr.write(`[trellis] a listener of "${String(event)}" threw: ${err instanceof Error ? err.stack : String(err)}\n`);
  }

  override emit<T extends EventEmitter.EventNames<Events>>(event: T, ...args: EventEmitter.EventArgs<Events, T>): boolean {
    // eventemitter3 keeps one listener as an object and several as an array; walk a snapshot
    const key = EventEmitter.prefixed ? `${EventEmitter.prefixed}${String(event)}` : event;
    const entry = (this as unknown as { _events: Record<string | symbol, Listener | Listener[]> })._events[key as string];
    if (!entry) return false;
    const list = Array.isArray(entry) ? entry.slice() : [entry];
    for (const l of list) {
      if (l.once) this.removeListener(event, l.fn as never, l.context, true);
      try {
        l.fn.apply(l.context, args as unknown[]);
      } catch (err) {
        this.onListenerError(event as string | symbol, err);
      }
    }
    return true;
  }
}

interface Listener {
  fn: (...args: unknown[]) => void;
  context: unknown;
  once: boolean;
}
