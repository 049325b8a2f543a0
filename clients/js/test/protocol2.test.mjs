import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { HeraldClient, msgpack } from "../dist/index.js";
import { publish, startStack, token, until } from "./harness.mjs";

// ws offers permessage-deflate by default; Recording keeps every socket the
// client opens, to read what the handshake settled.
const made = [];
class Recording extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    made.push(this);
  }
}

const orders = (user, from, to) =>
  Array.from({ length: to - from + 1 }, (_, i) => ({
    type: "order.placed", tenant: "acme", to: "user:" + user, id: `${user}-${from + i}`,
    // above the edge's 512-byte threshold: these go deflated
    data: { n: from + i, customer: { name: "Alice Martin", email: "alice@example.com" }, note: "é ".repeat(300) },
  }));

test("protocol 2 with compression: notifications in order, acks kept, pub and ping", async (t) => {
  const stack = await startStack(t);
  const tok = token({ sub: "v2u1", tenant: "acme", device: "phone" });
  const c = new HeraldClient({ url: stack.url(), token: tok, WebSocket: Recording, protocol: 2 });
  t.after(() => c.close());
  const got = [];
  c.on("notification", (n) => got.push(n));
  await c.connect();
  const ws = made.at(-1);
  assert.equal(ws.protocol, "herald.v2");
  assert.match(ws.extensions, /permessage-deflate/);
  const frames = [];
  ws.on("message", (data, isBinary) => frames.push(isBinary));
  await publish(stack, orders("v2u1", 1, 60));
  await until("60 notifications", () => got.length >= 60);
  assert.deepEqual(got.map((n) => n.data.n), Array.from({ length: 60 }, (_, i) => i + 1));
  assert.equal(got[0].data.note, "é ".repeat(300));
  assert.equal(got[0].type, "order.placed");
  assert.equal(got[0].feed, "user");
  assert.ok(frames.length >= 60 && frames.every((b) => b), "every frame was binary");
  // The batched acks reach the edge: a new session of the device gets only
  // what came after.
  await new Promise((r) => setTimeout(r, 400)); // past ackInterval (100 ms): the acks are out
  c.close();
  await publish(stack, orders("v2u1", 61, 62));
  const c2 = new HeraldClient({ url: stack.url(), token: tok, WebSocket: Recording, protocol: 2 });
  t.after(() => c2.close());
  const later = [];
  c2.on("notification", (n) => later.push(n.data.n));
  await c2.connect();
  await until("the two new ones", () => later.length >= 2);
  await new Promise((r) => setTimeout(r, 300)); // nothing older may follow
  assert.deepEqual(later, [61, 62]);
  // A pub frame in MessagePack is accepted (an error frame would say otherwise).
  const errors = [];
  c2.on("error", (e) => errors.push(e));
  c2.publish("chat.message", { text: "hello", n: 1 });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(errors, []);
  assert.equal(c2.state, "connected");
});

test("protocol 1 stays the default, with or without compression", async (t) => {
  const stack = await startStack(t);
  const c = new HeraldClient({ url: stack.url(), token: token({ sub: "v1u1", tenant: "acme" }), WebSocket: Recording });
  t.after(() => c.close());
  const got = [];
  c.on("notification", (n) => got.push(n.data.n));
  await c.connect();
  const ws = made.at(-1);
  assert.equal(ws.protocol, "");
  assert.match(ws.extensions, /permessage-deflate/);
  await publish(stack, orders("v1u1", 1, 5));
  await until("5 notifications", () => got.length >= 5);
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
});

test("the MessagePack codec reads what the edge writes and writes what it reads", () => {
  // {"t":"n","id":"e-1-user","seq":300,"ts":1764756942000,"data":bin of {"a":1}}, as the edge encodes it
  const hex = "85a174a16ea26964a8652d312d75736572a3736571cd012ca27473cf0000019ae3b5ecb0a464617461c4077b2261223a317d";
  const f = msgpack.decode(Buffer.from(hex, "hex"));
  assert.deepEqual(f, { t: "n", id: "e-1-user", seq: 300, ts: 1764756942000, data: { a: 1 } });
  const frame = { t: "resume", feeds: { user: { epoch: "e1", seq: 41 }, "topic:news": { epoch: "e2", seq: 70000 } } };
  const back = msgpack.decode(msgpack.encode(frame));
  assert.deepEqual(back, frame);
  const pub = msgpack.encode({ t: "pub", type: "x", data: { text: "ü", big: "y".repeat(300) } });
  assert.deepEqual(msgpack.decode(pub), { t: "pub", type: "x", data: { text: "ü", big: "y".repeat(300) } });
  assert.throws(() => msgpack.decode(Buffer.from("93010203", "hex")), /map/);
  assert.throws(() => msgpack.decode(Buffer.from("82a174", "hex")), /cut short/);
});
