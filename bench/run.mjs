#!/usr/bin/env node
// Runs every benchmark in bench/ (each prints ours vs a baseline measured in the same run).
import { readdirSync } from 'node:fs';

for (const file of readdirSync(new URL('.', import.meta.url)).filter((f) => f.endsWith('.mjs') && f !== 'run.mjs').sort()) {
  await import(new URL(file, import.meta.url).href);
}
