#!/usr/bin/env node
// `npm run bench`: every benchmark, each printing ours against a baseline measured in the same run.
await import('./fuel.mjs');
