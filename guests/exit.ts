// Exits with the code given as the first argument (default 3), printing nothing.
import { args, exit } from "../assembly/index";

const argv = args();
exit(argv.length > 0 ? I32.parseInt(argv[0], 10) : 3);
