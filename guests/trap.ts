// Says so, then executes a wasm `unreachable` instruction: the host should report a guest trap.
import { console } from "../assembly/index";

console.log("about to trap");
unreachable();
