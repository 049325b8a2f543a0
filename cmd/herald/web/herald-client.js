// herald-client: the browser and Node client of Herald's WebSocket
// protocols 1 (JSON text frames) and 2 (MessagePack binary frames) and of
// its HTTP inbox API. No runtime dependencies.
/** The protocol version this client speaks unless Options.protocol says 2. */
export const PROTOCOL = 1;
/** The subprotocol names (Sec-WebSocket-Protocol) of protocols 1 and 2. */
export const SUBPROTOCOLS = { 1: "herald.v1", 2: "herald.v2" };
// Close codes of protocol 1.
const CLOSE = {
    normal: 1000, idle: 1001, protocol: 1008, tooBig: 1009, internal: 1011, restart: 1012, tryLater: 1013,
    unauthorized: 4001, forbidden: 4003, expired: 4004, slow: 4008, tooMany: 4029,
};
/**
 * HeraldClient keeps one WebSocket session to a Herald edge: it reconnects
 * with backoff and jitter as the close codes say, resumes from what it has
 * seen, drops duplicates, acks in batches, refreshes the token, and
 * re-subscribes its topics.
 */
export class HeraldClient {
    constructor(opts) {
        this.handlers = {
            notification: new Set(), state: new Set(), unread: new Set(), reset: new Set(), error: new Set(),
        };
        this.ws = null;
        this.token = "";
        this.st = "disconnected";
        this.stopped = true;
        this.attempt = 0;
        this.positions = new Map();
        this.pendingAcks = new Map();
        this.ackTimer = null;
        this.retryTimer = null;
        this.refreshTimer = null;
        this.topics = new Set();
        this.unreadCount = null;
        this.firstWelcome = null;
        this.counting = false; // GET /v1/inbox/unread in flight
        this.arrived = 0; // notifications of the inbox feeds seen
        this.unreadVersion = 0; // bumped by every setUnread
        this.gen = 0; // bumped by every open() and close(): stale async work checks it
        this.opts = { ackInterval: 100, minBackoff: 500, maxBackoff: 30000, refreshBefore: 60000, ...opts };
        const WS = opts.WebSocket ?? globalThis.WebSocket;
        if (!WS)
            throw new Error("herald-client: no WebSocket: pass one (in Node, the ws package)");
        if (!opts.token && !opts.getToken)
            throw new Error("herald-client: give token or getToken");
        this.WS = WS;
        this.token = opts.token ?? "";
        this.inbox = new Inbox(this);
    }
    /** Registers a handler; returns a function that removes it. */
    on(event, fn) {
        this.handlers[event].add(fn);
        return () => this.handlers[event].delete(fn);
    }
    get state() {
        return this.st;
    }
    /** Connects; resolves at the first welcome, rejects if the edge refuses for good first. */
    connect() {
        if (!this.stopped)
            return this.firstWelcome ? this.firstWelcome.promise : Promise.resolve();
        this.stopped = false;
        let resolve, reject;
        const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
        this.firstWelcome = { promise, resolve, reject };
        void this.open();
        return promise;
    }
    /** Sends the acks still pending, then closes for good (connect() may start it again). */
    close() {
        this.flushAcks();
        this.stopped = true;
        this.gen++;
        this.clearTimers();
        if (this.ws) {
            this.ws.close(CLOSE.normal, "client closed");
            this.ws = null;
        }
        if (this.firstWelcome) {
            this.firstWelcome.reject(new Error("herald-client: closed before the first welcome"));
            this.firstWelcome = null;
        }
        this.setState("closed");
    }
    /** Subscribes to a topic now and after every reconnect. */
    subscribe(topic) {
        this.topics.add(topic);
        this.send({ t: "sub", topic });
    }
    unsubscribe(topic) {
        this.topics.delete(topic);
        this.send({ t: "unsub", topic });
        // The edge forgets the device's position in it: so does the client.
        this.positions.delete("topic:" + topic);
        this.pendingAcks.delete("topic:" + topic);
    }
    /** Publishes an upstream event (the edge appends it with the verified user). */
    publish(type, data) {
        if (!this.send({ t: "pub", type, data }))
            throw new Error("herald-client: not connected");
    }
    /** The current token (for the inbox calls). */
    async currentToken() {
        if (!this.token && this.opts.getToken)
            this.token = await this.opts.getToken();
        return this.token;
    }
    /** The HTTP API's base URL: the edge's host over http(s). */
    apiBase() {
        const u = new URL(this.opts.url);
        u.protocol = u.protocol === "wss:" ? "https:" : "http:";
        return u.origin;
    }
    get device() {
        return this.opts.device;
    }
    get fetchImpl() {
        if (this.opts.fetch)
            return this.opts.fetch.bind(globalThis);
        if (!globalThis.fetch)
            throw new Error("herald-client: no fetch for the inbox API");
        // A browser's fetch must be called on the window, not on this client.
        return globalThis.fetch.bind(globalThis);
    }
    // --- connection --------------------------------------------------------
    async open() {
        if (this.stopped)
            return;
        const gen = ++this.gen;
        this.setState("connecting");
        let token;
        try {
            token = await this.currentToken();
        }
        catch (e) {
            if (gen !== this.gen)
                return;
            this.emitError({ code: "token", message: "getToken failed: " + String(e), fatal: false });
            this.retry(this.backoff());
            return;
        }
        if (this.stopped || gen !== this.gen)
            return; // closed, or another open() took over
        let ws;
        try {
            const u = new URL(this.opts.url);
            u.searchParams.set("token", token);
            if (this.opts.device)
                u.searchParams.set("device", this.opts.device);
            ws = this.opts.protocol === 2 ? new this.WS(u.toString(), [SUBPROTOCOLS[2]]) : new this.WS(u.toString());
            ws.binaryType = "arraybuffer";
        }
        catch (e) {
            this.fail("cannot open a WebSocket to " + this.opts.url + ": " + String(e));
            return;
        }
        this.ws = ws;
        let welcomed = false;
        ws.onmessage = (ev) => {
            if (this.ws !== ws)
                return;
            let f;
            try {
                f = typeof ev.data === "string" ? JSON.parse(ev.data) : fromMsgpack(ev.data);
            }
            catch {
                return;
            }
            if (f.t === "welcome")
                welcomed = true;
            this.onFrame(f);
        };
        ws.onclose = (ev) => {
            if (this.ws !== ws)
                return;
            this.ws = null;
            this.onClose(ev.code, ev.reason, welcomed);
        };
        ws.onerror = () => {
            /* onclose follows */
        };
    }
    onFrame(f) {
        switch (f.t) {
            case "welcome":
                this.attempt = 0;
                this.setState("connected");
                this.afterWelcome();
                break;
            case "n":
                this.onNotification(f);
                break;
            case "reset":
                this.emit("reset", { feed: String(f.feed), reason: String(f.reason), action: "fetch-inbox" });
                break;
            case "unread":
                this.setUnread(Number(f.count));
                break;
            case "error":
                this.emitError({ code: String(f.code), message: String(f.msg), fatal: false });
                break;
        }
    }
    afterWelcome() {
        // Resume from what the application has seen: exact even for what was
        // seen but not yet acked. Without positions the edge replays from the
        // device's stored ACK position.
        // Topics first: the edge attaches a topic's feed at sub, and resume
        // may only name attached feeds.
        for (const topic of this.topics)
            this.send({ t: "sub", topic });
        if (this.positions.size > 0) {
            const feeds = {};
            for (const [feed, p] of this.positions)
                feeds[feed] = p;
            this.send({ t: "resume", feeds });
        }
        this.flushAcks(); // what the last session could not send
        this.scheduleRefresh();
        if (this.firstWelcome) {
            this.firstWelcome.resolve();
            this.firstWelcome = null;
        }
        this.fetchUnread(); // read again after every welcome: frames may have been missed
    }
    onNotification(f) {
        const n = {
            id: String(f.id), feed: String(f.feed), seq: Number(f.seq), type: String(f.type), ts: Number(f.ts), data: f.data,
        };
        const epoch = n.id.slice(0, n.id.indexOf("-"));
        const seen = this.positions.get(n.feed);
        if (seen && seen.epoch === epoch && n.seq <= seen.seq) {
            this.ack(n.feed, n.id); // a duplicate: the edge may not know we have it
            return;
        }
        this.positions.set(n.feed, { epoch, seq: n.seq });
        this.emit("notification", n);
        if (n.feed === "user" || n.feed === "tenant") {
            this.arrived++;
            // Counted once the first count is in; while it is being read, the
            // server's answer may or may not include this one: read it again.
            if (this.unreadCount !== null && !this.counting)
                this.setUnread(this.unreadCount + 1);
        }
        this.ack(n.feed, n.id);
    }
    onClose(code, reason, welcomed) {
        this.clearTimers();
        if (this.stopped)
            return;
        this.setState("disconnected");
        const fatal = (message) => this.fail(message, code);
        switch (code) {
            case CLOSE.normal: // replaced by a newer session of this device
                fatal("replaced: " + reason);
                return;
            case CLOSE.unauthorized:
            case CLOSE.forbidden:
                if (!this.opts.getToken) {
                    fatal(`refused (${code}): ${reason}`);
                    return;
                }
                this.emitError({ code: "refused", message: reason, closeCode: code, fatal: false });
                this.waitNewToken();
                return;
            case CLOSE.expired:
                this.token = "";
                if (!this.opts.getToken) {
                    fatal("token expired and no getToken to renew it");
                    return;
                }
                this.retry(welcomed ? 0 : this.backoff());
                return;
            case CLOSE.tooMany:
                this.retry(Math.max(5000, this.backoff() * 4));
                return;
            case CLOSE.protocol:
            case CLOSE.tooBig:
                fatal(`the edge refused this client's frames (${code}): ${reason}`);
                return;
            default: // 4008, 1012, 1013, 1001, 1006, 1011: reconnect and resume
                this.retry(welcomed && code === CLOSE.restart ? Math.random() * this.opts.minBackoff : this.backoff());
        }
    }
    /** 4001/4003: stop until getToken gives another token. */
    waitNewToken() {
        const old = this.token;
        const gen = this.gen;
        const attempt = () => {
            this.retryTimer = setTimeout(async () => {
                this.retryTimer = null;
                let t = "";
                try {
                    t = await this.opts.getToken();
                }
                catch {
                    /* keep waiting */
                }
                if (this.stopped || gen !== this.gen)
                    return;
                if (t && t !== old) {
                    this.token = t;
                    void this.open();
                }
                else {
                    attempt();
                }
            }, this.backoff());
        };
        attempt();
    }
    /** Ends the client with a fatal error. */
    fail(message, closeCode) {
        this.stopped = true;
        this.gen++;
        this.clearTimers();
        this.setState("closed");
        this.emitError({ code: "closed", message, closeCode, fatal: true });
        if (this.firstWelcome) {
            this.firstWelcome.reject(new Error(message));
            this.firstWelcome = null;
        }
    }
    backoff() {
        const cap = Math.min(this.opts.maxBackoff, this.opts.minBackoff * 2 ** this.attempt);
        this.attempt = Math.min(this.attempt + 1, 16);
        return this.opts.minBackoff / 2 + Math.random() * cap; // full jitter above a floor
    }
    retry(ms) {
        if (this.stopped)
            return;
        this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            void this.open();
        }, ms);
    }
    // --- acks, refresh ------------------------------------------------------
    ack(feed, id) {
        this.pendingAcks.set(feed, id);
        if (!this.ackTimer)
            this.ackTimer = setTimeout(() => this.flushAcks(), this.opts.ackInterval);
    }
    /** Sends the pending acks, at most maxAckFrames; the rest go next time. */
    flushAcks() {
        if (this.ackTimer)
            clearTimeout(this.ackTimer);
        this.ackTimer = null;
        let sent = 0;
        for (const [feed, id] of this.pendingAcks) {
            if (sent >= maxAckFrames || !this.send({ t: "ack", id }))
                break;
            this.pendingAcks.delete(feed);
            sent++;
        }
        if (this.pendingAcks.size > 0 && this.st === "connected") {
            this.ackTimer = setTimeout(() => this.flushAcks(), this.opts.ackInterval);
        }
    }
    /** With getToken, sends refresh refreshBefore the token's exp (or half-way, for short tokens). */
    scheduleRefresh() {
        if (this.refreshTimer)
            clearTimeout(this.refreshTimer);
        this.refreshTimer = null;
        if (!this.opts.getToken)
            return;
        const exp = tokenExpiry(this.token);
        if (!exp)
            return;
        const left = exp - Date.now();
        let wait = left > this.opts.refreshBefore ? left - this.opts.refreshBefore : left / 2;
        wait = Math.min(Math.max(wait, 1000), maxTimer);
        const gen = this.gen;
        this.refreshTimer = setTimeout(async () => {
            this.refreshTimer = null;
            let t;
            try {
                t = await this.opts.getToken();
            }
            catch (e) {
                if (gen === this.gen)
                    this.emitError({ code: "token", message: "refresh failed: " + String(e), fatal: false });
                return;
            }
            if (this.stopped || gen !== this.gen)
                return; // closed or reconnected meanwhile
            if (t && t !== this.token) {
                this.token = t;
                this.send({ t: "refresh", token: t });
            }
            this.scheduleRefresh();
        }, wait);
    }
    clearTimers() {
        for (const t of [this.retryTimer, this.refreshTimer, this.ackTimer])
            if (t)
                clearTimeout(t);
        this.retryTimer = this.refreshTimer = this.ackTimer = null;
    }
    // --- plumbing -------------------------------------------------------------
    send(frame) {
        if (!this.ws || this.ws.readyState !== 1 || this.st !== "connected")
            return false;
        this.ws.send(this.ws.protocol === SUBPROTOCOLS[2] ? toMsgpack(frame) : JSON.stringify(frame));
        return true;
    }
    /** Reads the unread count, again if notifications arrived meanwhile. */
    fetchUnread() {
        if (this.counting)
            return;
        this.counting = true;
        const before = this.arrived;
        const version = this.unreadVersion;
        this.inbox.unread().then((n) => {
            this.counting = false;
            if (this.stopped)
                return;
            // A newer exact count (an unread frame, markRead) wins over this one.
            if (this.unreadVersion === version)
                this.setUnread(n);
            if (this.arrived !== before)
                this.fetchUnread();
        }, () => {
            this.counting = false; // no HTTP API: no count
        });
    }
    /** Sets the unread count and tells the application. */
    setUnread(n) {
        if (!Number.isFinite(n))
            return;
        this.unreadVersion++;
        this.unreadCount = n;
        this.emit("unread", n);
    }
    setState(s) {
        if (this.st === s)
            return;
        this.st = s;
        this.emit("state", s);
    }
    emitError(e) {
        this.emit("error", e);
    }
    emit(event, ...args) {
        for (const fn of this.handlers[event]) {
            try {
                fn(...args);
            }
            catch (e) {
                if (event !== "error")
                    this.emitError({ code: "handler", message: String(e), fatal: false });
            }
        }
    }
}
/** The inbox API (GET /v1/inbox, /v1/inbox/unread, POST /v1/inbox/read). */
export class Inbox {
    constructor(c) {
        this.c = c;
    }
    async list(opts = {}) {
        const q = new URLSearchParams();
        if (opts.limit)
            q.set("limit", String(opts.limit));
        if (opts.before)
            q.set("before", opts.before);
        if (opts.unread)
            q.set("unread", "true");
        return (await this.call("GET", "/v1/inbox?" + q.toString()));
    }
    async unread() {
        return (await this.call("GET", "/v1/inbox/unread?")).unread;
    }
    /** Marks read for all the user's devices; resolves to this device's new unread count. */
    async markRead(m) {
        const body = "ids" in m ? { ids: m.ids } : "upTo" in m ? { up_to: m.upTo } : { all: true };
        const n = (await this.call("POST", "/v1/inbox/read?", body)).unread;
        this.c.setUnread(n);
        return n;
    }
    async call(method, path, body) {
        const dev = this.c.device ? "&device=" + encodeURIComponent(this.c.device) : "";
        const f = this.c.fetchImpl;
        const resp = await f(this.c.apiBase() + path + dev, {
            method,
            headers: { Authorization: "Bearer " + (await this.c.currentToken()), "Content-Type": "application/json" },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const json = (await resp.json());
        if (!resp.ok) {
            const e = new Error(`${method} ${path.split("?")[0]}: ${resp.status} ${json.error?.message ?? ""}`);
            e.status = resp.status;
            e.code = json.error?.code;
            throw e;
        }
        return json;
    }
}
/** The exp claim of a JWT, in unix ms, or 0. */
function tokenExpiry(token) {
    try {
        const part = token.split(".")[1];
        const json = atob(part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4));
        const exp = JSON.parse(json).exp;
        return typeof exp === "number" ? exp * 1000 : 0;
    }
    catch {
        return 0;
    }
}
// The longest setTimeout delay (about 24.8 days).
const maxTimer = 2 ** 31 - 1;
// At most this many ack frames per ackInterval: far below the edge's
// frame limit (200/s) with many busy topic feeds.
const maxAckFrames = 10;
// --- protocol 2: MessagePack ------------------------------------------------
//
// The frames of protocol 1 as MessagePack maps with the same field names; a
// notification's data (and a pub's) is a bin holding the JSON bytes. Only
// what the frames use is written: maps, strings, integers, bins, arrays,
// booleans and nil. Reading takes any MessagePack value but extensions.
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
/** Encodes a client frame; its data goes as a bin of JSON. */
function toMsgpack(frame) {
    const out = [];
    const entries = Object.entries(frame).filter(([, v]) => v !== undefined);
    header(out, entries.length, 0x80, 0xde);
    for (const [k, v] of entries) {
        writeValue(out, k);
        if (k === "data")
            writeBin(out, utf8.encode(JSON.stringify(v)));
        else
            writeValue(out, v);
    }
    return Uint8Array.from(out);
}
function header(out, n, fix, wide16) {
    if (n < 16)
        out.push(fix | n);
    else if (n < 0x10000)
        out.push(wide16, n >> 8, n & 0xff);
    else
        out.push(wide16 + 1, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}
function writeBin(out, b) {
    if (b.length < 0x100)
        out.push(0xc4, b.length);
    else if (b.length < 0x10000)
        out.push(0xc5, b.length >> 8, b.length & 0xff);
    else
        out.push(0xc6, b.length >>> 24, (b.length >> 16) & 0xff, (b.length >> 8) & 0xff, b.length & 0xff);
    for (const x of b)
        out.push(x);
}
function writeValue(out, v) {
    if (v === null || v === undefined) {
        out.push(0xc0);
    }
    else if (typeof v === "boolean") {
        out.push(v ? 0xc3 : 0xc2);
    }
    else if (typeof v === "number") {
        if (!Number.isSafeInteger(v))
            throw new Error("herald-client: only integers are sent in MessagePack: " + v);
        if (v >= 0 && v < 0x80)
            out.push(v);
        else if (v < 0 && v >= -32)
            out.push(v & 0xff);
        else {
            // int64/uint64, big-endian
            const big = BigInt.asUintN(64, BigInt(v));
            out.push(v < 0 ? 0xd3 : 0xcf);
            for (let i = 7; i >= 0; i--)
                out.push(Number((big >> BigInt(8 * i)) & 0xffn));
        }
    }
    else if (typeof v === "string") {
        const b = utf8.encode(v);
        if (b.length < 32)
            out.push(0xa0 | b.length);
        else if (b.length < 0x100)
            out.push(0xd9, b.length);
        else if (b.length < 0x10000)
            out.push(0xda, b.length >> 8, b.length & 0xff);
        else
            out.push(0xdb, b.length >>> 24, (b.length >> 16) & 0xff, (b.length >> 8) & 0xff, b.length & 0xff);
        for (const x of b)
            out.push(x);
    }
    else if (v instanceof Uint8Array) {
        writeBin(out, v);
    }
    else if (Array.isArray(v)) {
        header(out, v.length, 0x90, 0xdc);
        for (const x of v)
            writeValue(out, x);
    }
    else if (typeof v === "object") {
        const entries = Object.entries(v).filter(([, x]) => x !== undefined);
        header(out, entries.length, 0x80, 0xde);
        for (const [k, x] of entries) {
            writeValue(out, k);
            writeValue(out, x);
        }
    }
    else {
        throw new Error("herald-client: cannot send a " + typeof v + " in MessagePack");
    }
}
/**
 * Decodes a server frame (an ArrayBuffer, or a Node Buffer) into the
 * object protocol 1 would have sent: a notification's data, a bin of JSON,
 * is parsed.
 */
function fromMsgpack(data) {
    const b = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    if (!b)
        throw new Error("herald-client: not a binary frame");
    const r = { b, v: new DataView(b.buffer, b.byteOffset, b.byteLength), i: 0 };
    const f = readValue(r);
    if (r.i !== b.length || f === null || typeof f !== "object" || Array.isArray(f) || f instanceof Uint8Array) {
        throw new Error("herald-client: not one MessagePack map");
    }
    const m = f;
    if (m.data instanceof Uint8Array)
        m.data = JSON.parse(fromUtf8.decode(m.data));
    return m;
}
function take(r, n) {
    const at = r.i;
    if (at + n > r.b.length)
        throw new Error("herald-client: MessagePack frame cut short");
    r.i += n;
    return at;
}
function readValue(r) {
    const c = r.b[take(r, 1)];
    if (c < 0x80)
        return c;
    if (c >= 0xe0)
        return c - 0x100;
    if ((c & 0xf0) === 0x80)
        return readMap(r, c & 0x0f);
    if ((c & 0xf0) === 0x90)
        return readArray(r, c & 0x0f);
    if ((c & 0xe0) === 0xa0)
        return readStr(r, c & 0x1f);
    switch (c) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: return readBin(r, r.v.getUint8(take(r, 1)));
        case 0xc5: return readBin(r, r.v.getUint16(take(r, 2)));
        case 0xc6: return readBin(r, r.v.getUint32(take(r, 4)));
        case 0xca: return r.v.getFloat32(take(r, 4));
        case 0xcb: return r.v.getFloat64(take(r, 8));
        case 0xcc: return r.v.getUint8(take(r, 1));
        case 0xcd: return r.v.getUint16(take(r, 2));
        case 0xce: return r.v.getUint32(take(r, 4));
        case 0xcf: return Number(r.v.getBigUint64(take(r, 8)));
        case 0xd0: return r.v.getInt8(take(r, 1));
        case 0xd1: return r.v.getInt16(take(r, 2));
        case 0xd2: return r.v.getInt32(take(r, 4));
        case 0xd3: return Number(r.v.getBigInt64(take(r, 8)));
        case 0xd9: return readStr(r, r.v.getUint8(take(r, 1)));
        case 0xda: return readStr(r, r.v.getUint16(take(r, 2)));
        case 0xdb: return readStr(r, r.v.getUint32(take(r, 4)));
        case 0xdc: return readArray(r, r.v.getUint16(take(r, 2)));
        case 0xdd: return readArray(r, r.v.getUint32(take(r, 4)));
        case 0xde: return readMap(r, r.v.getUint16(take(r, 2)));
        case 0xdf: return readMap(r, r.v.getUint32(take(r, 4)));
    }
    throw new Error("herald-client: unsupported MessagePack type 0x" + c.toString(16));
}
function readStr(r, n) {
    const at = take(r, n);
    return fromUtf8.decode(r.b.subarray(at, at + n));
}
function readBin(r, n) {
    const at = take(r, n);
    return r.b.slice(at, at + n);
}
function readArray(r, n) {
    const a = [];
    for (let k = 0; k < n; k++)
        a.push(readValue(r));
    return a;
}
function readMap(r, n) {
    const m = {};
    for (let k = 0; k < n; k++) {
        const key = readValue(r);
        if (typeof key !== "string")
            throw new Error("herald-client: a MessagePack map key that is not a string");
        m[key] = readValue(r);
    }
    return m;
}
/** The MessagePack codec of protocol 2, exported for tests. */
export const msgpack = { encode: toMsgpack, decode: fromMsgpack };
