// Test harness: a real redis-server and a real `herald dev` (dispatcher and
// edge in one process), on free loopback ports, stopped after the test.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SECRET = "js-tests-secret-that-is-at-least-32-bytes";
export const API_KEY = "js-tests-0123456789abcdef";

export function heraldBin() {
  const bin = process.env.HERALD_BIN;
  if (!bin) throw new Error("HERALD_BIN is not set: run these tests with `go tool task test` (or task js:test)");
  return bin;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, fn, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ping(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("error", () => resolve(false));
    c.once("data", (d) => { c.destroy(); resolve(String(d).startsWith("+PONG")); });
    c.write("PING\r\n");
  });
}

/**
 * A running stack: redis + herald dev. stop() ends both and deletes their
 * files. With console, herald dev serves its dev console (the notification
 * centre) on stack.console, signing tokens with a secret of its own.
 */
export async function startStack(t, extraArgs = [], { console = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "herald-js-"));
  const redisPort = await freePort();
  const redis = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" });
  await until("redis-server", () => ping(redisPort));
  writeFileSync(join(dir, "api-keys"), `js ${API_KEY} *\n`);
  const stack = {
    dir, redis, redisURL: `redis://127.0.0.1:${redisPort}/0`, listen: `127.0.0.1:${await freePort()}`, herald: null,
    console: console ? `127.0.0.1:${await freePort()}` : null,
    url() { return `ws://${this.listen}/ws`; },
    api() { return `http://${this.listen}`; },
    async start() {
      const args = ["dev", "--listen", this.listen, "--admin-listen", "127.0.0.1:0", "--data-dir", join(dir, "data"),
        "--log-format", "json", "--jwt-leeway", "1s", ...extraArgs];
      const env = { ...process.env, HERALD_REDIS_URL: this.redisURL };
      if (this.console) {
        args.push("--dev-console", "--dev-console-listen", this.console);
        delete env.HERALD_JWT_HS256_SECRET;
      } else {
        args.push("--api-keys", join(dir, "api-keys"));
        env.HERALD_JWT_HS256_SECRET = SECRET;
      }
      const p = spawn(heraldBin(), args, { env, stdio: ["ignore", "ignore", "pipe"] });
      this.herald = p;
      let log = "";
      const ready = new Promise((resolve, reject) => {
        p.stderr.on("data", (d) => {
          log += d;
          if (log.includes('"edge ready"')) resolve();
        });
        p.once("exit", (code) => reject(new Error(`herald dev exited ${code}: ${log.slice(-2000)}`)));
      });
      await Promise.race([ready, new Promise((_, rej) => setTimeout(() => rej(new Error("herald dev not ready: " + log.slice(-2000))), 20000))]);
    },
    /** SIGTERM: the edge drains (1012) and exits. */
    async stop() {
      const p = this.herald;
      if (!p || p.exitCode !== null) return;
      const gone = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await gone;
      this.herald = null;
    },
  };
  await stack.start();
  t.after(async () => {
    if (stack.herald) {
      const gone = new Promise((r) => stack.herald.once("exit", r));
      stack.herald.kill("SIGKILL");
      await gone;
    }
    const gone = new Promise((r) => redis.once("exit", r));
    redis.kill("SIGKILL");
    await gone;
    rmSync(dir, { recursive: true, force: true });
  });
  return stack;
}

/** An HS256 token the stack's edge accepts. */
export function token(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = { exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
  const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(body);
  return head + "." + createHmac("sha256", SECRET).update(head).digest("base64url");
}

/** Publishes events through POST /v1/publish/batch. */
export async function publish(stack, events) {
  const resp = await fetch(stack.api() + "/v1/publish/batch", {
    method: "POST",
    headers: { Authorization: "Bearer " + API_KEY, "Content-Type": "application/json" },
    body: JSON.stringify({ events }),
  });
  if (resp.status !== 202) throw new Error("publish: " + resp.status + " " + (await resp.text()));
}

export { until };
