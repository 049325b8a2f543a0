import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { HeraldClient } from "../dist/index.js";
import { publish, startStack, token, until } from "./harness.mjs";

const orders = (user, from, to) =>
  Array.from({ length: to - from + 1 }, (_, i) => ({
    type: "order.placed", tenant: "acme", to: "user:" + user, data: { n: from + i }, id: `${user}-${from + i}`,
  }));

test("500 notifications across an edge restart arrive exactly once and in order", async (t) => {
  const stack = await startStack(t);
  const c = new HeraldClient({ url: stack.url(), token: token({ sub: "u1", tenant: "acme", device: "d1" }), WebSocket, minBackoff: 100, maxBackoff: 1000 });
  t.after(() => c.close());
  const got = [];
  const states = [];
  c.on("notification", (n) => got.push(n.data.n));
  c.on("state", (s) => states.push(s));
  await c.connect();
  for (let i = 1; i <= 250; i += 50) await publish(stack, orders("u1", i, i + 49));
  await until("the first 250", () => got.length >= 250);
  await stack.stop(); // drain: 1012, then the process exits
  await until("disconnected", () => c.state !== "connected");
  await stack.start();
  for (let i = 251; i <= 500; i += 50) await publish(stack, orders("u1", i, i + 49));
  await until("all 500", () => got.length >= 500, 30000);
  await new Promise((r) => setTimeout(r, 300)); // nothing more may come
  assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i + 1));
  assert.ok(states.filter((s) => s === "connected").length >= 2, "reconnected: " + states.join(","));
});

test("the token is refreshed before it expires", async (t) => {
  const stack = await startStack(t);
  let calls = 0;
  const getToken = () => {
    calls++;
    return token({ sub: "u2", tenant: "acme", exp: Math.floor(Date.now() / 1000) + 4 });
  };
  const c = new HeraldClient({ url: stack.url(), getToken, WebSocket, refreshBefore: 2500 });
  t.after(() => c.close());
  await c.connect();
  const closes = [];
  c.on("state", (s) => s !== "connected" && closes.push(s));
  await new Promise((r) => setTimeout(r, 7000)); // past the first token's exp + leeway
  assert.equal(c.state, "connected");
  assert.deepEqual(closes, [], "the session never dropped");
  assert.ok(calls >= 3, `getToken called ${calls} times`);
  await publish(stack, orders("u2", 1, 1));
  await until("a notification on the refreshed session", async () => (await c.inbox.unread()) === 1);
});

test("close codes: a bad token stops, getToken's new one resumes; 4004 renews", async (t) => {
  const stack = await startStack(t);
  const bad = new HeraldClient({ url: stack.url(), token: "not-a-jwt", WebSocket });
  const errors = [];
  bad.on("error", (e) => errors.push(e));
  await assert.rejects(bad.connect());
  assert.equal(bad.state, "closed");
  assert.ok(errors.some((e) => e.fatal && e.closeCode === 4001), JSON.stringify(errors));

  let good = false;
  const c = new HeraldClient({ url: stack.url(), WebSocket, minBackoff: 100,
    getToken: () => (good ? token({ sub: "u3", tenant: "acme" }) : "still-bad") });
  t.after(() => c.close());
  const p = c.connect();
  await until("a refusal", () => c.state === "disconnected" || c.state === "connecting");
  good = true;
  await p;
  assert.equal(c.state, "connected");

  // An expired token (past exp and the 1 s leeway) gets 4004; getToken renews it.
  let n = 0;
  const e = new HeraldClient({ url: stack.url(), WebSocket, minBackoff: 100,
    getToken: () => token({ sub: "u4", tenant: "acme", exp: Math.floor(Date.now() / 1000) - (n++ === 0 ? 60 : -3600) }) });
  t.after(() => e.close());
  await e.connect();
  assert.ok(n >= 2, "a fresh token was asked for");
});

test("inbox, unread count and mark-read", async (t) => {
  const stack = await startStack(t);
  const c = new HeraldClient({ url: stack.url(), token: token({ sub: "u5", tenant: "acme", device: "phone" }), WebSocket });
  t.after(() => c.close());
  const counts = [];
  c.on("unread", (n) => counts.push(n));
  await c.connect();
  await until("the first count", () => counts.length > 0);
  await publish(stack, orders("u5", 1, 30));
  await until("30 unread", () => counts.at(-1) === 30);
  const page = await c.inbox.list({ limit: 10 });
  assert.equal(page.items.length, 10);
  assert.equal(page.unread, 30);
  assert.ok(page.next);
  assert.equal(page.items[0].data.n, 30);
  assert.equal(await c.inbox.markRead({ ids: [page.items[0].id, page.items[1].id] }), 28);
  assert.equal(await c.inbox.markRead({ upTo: page.items[9].id }), 7); // 22..28 left
  assert.equal(await c.inbox.markRead({ all: true }), 0);
  await until("the unread frame", () => counts.at(-1) === 0);
  await assert.rejects(c.inbox.list({ limit: 500 }), /400/);
});

test("topics are subscribed again after a reconnect", async (t) => {
  const stack = await startStack(t);
  const c = new HeraldClient({ url: stack.url(), token: token({ sub: "u6", tenant: "acme", topics: ["news"] }), WebSocket, minBackoff: 100, maxBackoff: 1000 });
  t.after(() => c.close());
  const got = [];
  c.on("notification", (n) => n.feed === "topic:news" && got.push(n.data.n));
  await c.connect();
  c.subscribe("news");
  const news = (n) => ({ type: "news.posted", tenant: "acme", to: "topic:news", data: { n }, id: "news-" + n });
  // The subscription is in place once a publication arrives.
  for (let n = 1; got.length === 0 && n < 50; n++) {
    await publish(stack, [news(n)]);
    await new Promise((r) => setTimeout(r, 100));
  }
  const before = got.length;
  assert.ok(before > 0, "the first subscription delivered nothing");
  await stack.stop();
  await until("disconnected", () => c.state !== "connected");
  await stack.start();
  await until("connected again", () => c.state === "connected");
  await publish(stack, [news(1000)]);
  await until("the topic's notification after the reconnect", () => got.includes(1000));
});
