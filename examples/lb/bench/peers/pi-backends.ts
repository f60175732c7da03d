/** Bench back-ends for the strategy comparison: `pi-backends.ts PORT MS_PER_DIGIT` (one at a time). */
import { createPiServer } from '../../src/pi-server.js';

const [port, perDigit] = process.argv.slice(2);
await createPiServer({ serial: true, msPerDigit: Number(perDigit) }).listen(Number(port));
process.stdout.write(`ready ${port}\n`);
