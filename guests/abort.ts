// Fails an assertion without printing: the SDK routes AssemblyScript's abort to HV_CALL_ABORT,
// so the host sees "guest assertion failed at guests/abort.ts:<line>:<col>".
import "../assembly/index";

assert(false, "guest assertion failed");
