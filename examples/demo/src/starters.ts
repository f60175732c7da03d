/** The engines the demo runs, each wired in its own part module. */
import type { Starters } from './demo.js';
import { startBalancerPart } from './balancer-part.js';
import { startBrokerPart } from './broker-part.js';
import { startChordPart } from './chord-part.js';

export const starters: Starters = {
  balancer: startBalancerPart,
  broker: startBrokerPart,
  chord: startChordPart,
};
