// Preloaded (`node --require`) into a benchmark's child process: at exit, writes the CPU time the
// whole process used (all its threads: user + system, ms) to fd 3, which the bench reads. CPU time
// is what a run costs whatever else the machine is doing; wall time is what it takes.
'use strict';
const { writeSync } = require('node:fs');
const { isMainThread } = require('node:worker_threads');
// Workers inherit --require: only the main thread reports (process.cpuUsage covers every thread).
if (isMainThread) process.on('exit', () => {
  const u = process.cpuUsage();
  try {
    writeSync(3, `${(u.user + u.system) / 1000}\n`);
  } catch {
    // no fd 3: not run by the bench
  }
});
