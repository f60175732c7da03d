/**
 * One host inside the demo (balancer, broker or Chord ring): started together, snapshotted for
 * the web view, closed on Ctrl-C. A part that cannot start reports why and the others go on.
 */
export interface DemoPart<View> {
  readonly name: string;
  /** Lines for the console: URLs and what to try. */
  readonly hints: readonly string[];
  snapshot(): View;
  close(): Promise<void>;
}
