/** `npm run attack-surface`: writes docs/attack-surface.json from the code (after a reviewed change). */
import { writeFileSync } from 'node:fs';
import { SURFACE_FILE, generateAttackSurface } from './generate.ts';

writeFileSync(SURFACE_FILE, generateAttackSurface());
console.log(`wrote ${SURFACE_FILE}`);
