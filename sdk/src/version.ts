/** The SDK's own version, checked against each plugin's `engines.trellis` range. */
import pkg from '../package.json' with { type: 'json' };

export const SDK_VERSION: string = pkg.version;
