// Attacks the host stack: recurses without bound. Expected: a stack-overflow trap that ends only
// this partition (ERR_GUEST_TRAP), never the host.
import { allocZeroed, console } from "../assembly/index";

const depth = allocZeroed(4);

// Not a tail call (the result is used after the call returns) and it stores to memory on every
// level, so the optimizer can neither turn it into a loop nor drop it.
function dive(n: u32): u32 {
  store<u32>(depth, n);
  return dive(n + 1) ^ load<u32>(depth);
}

console.log("recursing");
store<u32>(depth, dive(1));
