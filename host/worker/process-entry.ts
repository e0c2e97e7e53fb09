/** dist/process.js: the code a partition process runs (host/worker/process.ts). */
import { main } from './process.ts';

main();
