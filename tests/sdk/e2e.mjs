// Sends an exception, a message and a transaction with the real @sentry/node to the DSN given as the
// first argument; prints the event ids as JSON. @sentry/node is loaded from $SENTRY_NODE_DIR.
// Used by tests/real_sdks.rs (through `postflow serve`).
import { createRequire } from "node:module";
import path from "node:path";

const dsn = process.argv[2];
const require = createRequire(path.join(process.env.SENTRY_NODE_DIR ?? process.cwd(), "noop.js"));
const Sentry = require("@sentry/node");

Sentry.init({ dsn, release: "e2e-node@1.0", environment: "e2e", tracesSampleRate: 1.0, traceLifecycle: "static" });

const ids = {};
try {
  JSON.parse("{not json");
} catch (err) {
  ids.exception = Sentry.captureException(err);
}
ids.message = Sentry.captureMessage("hello from the node sdk", "info");
await Sentry.startSpan({ name: "e2e-node-transaction", op: "task" }, async () => {
  Sentry.startSpan({ name: "SELECT 1", op: "db.query" }, () => {});
  await new Promise((resolve) => setTimeout(resolve, 5));
});
await Sentry.flush(10000);
console.log(JSON.stringify(ids));
