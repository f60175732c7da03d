/** The engines the demo runs, each wired in its own part module. */
import type { Starters } from './demo.js';

export const starters: Starters = {};
