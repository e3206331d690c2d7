// Bad input against `p2pstream signal`: malformed Engine.IO and Socket.IO packets, wrong argument
// types, oversize frames, a flood from one socket, bad polling requests, a client that never
// answers pings, too many connections from one address. Meanwhile a well-behaved broadcaster and
// watcher (socket.io-client) must keep getting their events. Driven by tests/cli/signal_test.cpp,
// which starts the server with --max-frame 4096 --max-body 65536 --max-conn-per-ip 40
// --ping-interval 300 --ping-timeout 300 and measures the server's RSS around --burst.
//
//   node signal_abuse.mjs --url URL --stream ID --broadcaster SEED --watcher SEED [--burst ROUNDS]
import net from "node:net";
import WebSocket from "ws";
import { Peer, account, args, check, checkEqual, finish, httpText, metricValue, ready, signChallenge, step } from "./signal_lib.mjs";

const a = args();
const url = a.url;
const stream = a.stream;
const wsUrl = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
await ready();
const B = account(a.broadcaster);
const W = account(a.watcher);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A raw Engine.IO websocket: records text frames, answers pings unless told not to.
class Raw {
  constructor({ pong = true } = {}) {
    this.frames = [];
    this.closed = null;
    this.ws = new WebSocket(wsUrl, { perMessageDeflate: false, maxPayload: 8 << 20 });
    this.ws.on("message", (data, binary) => {
      const t = binary ? "<binary>" : data.toString();
      this.frames.push(t);
      if (pong && t === "2") this.ws.send("3");
    });
    this.ws.on("close", (code) => (this.closed = code));
    this.ws.on("error", (e) => (this.error = e.message));
    this.opened = new Promise((resolve) => {
      this.ws.once("open", () => resolve(true));
      this.ws.once("error", () => resolve(false));
    });
  }
  send(x) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(x);
  }
  async connectSio() {
    if (!(await this.opened)) throw new Error(`websocket did not open: ${this.error}`);
    this.send("40");
    await this.until(() => this.frames.some((f) => f.startsWith("40{")), "40{sid}");
  }
  async until(pred, what, ms = 3000) {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; frames ${JSON.stringify(this.frames).slice(0, 400)}`);
      await sleep(10);
    }
  }
  errors() {
    return this.frames.filter((f) => f.startsWith('42["error"')).map((f) => JSON.parse(f.slice(2))[1].message);
  }
  async isClosed(ms = 3000) {
    try {
      await this.until(() => this.closed !== null, "close", ms);
      return true;
    } catch {
      return false;
    }
  }
  close() {
    this.ws.terminate();
  }
}

// The well-behaved pair.
const b = new Peer(url, "broadcaster", { transports: ["websocket"] });
const w = new Peer(url, "watcher", { transports: ["websocket"] });
await step("a broadcaster and a watcher join", async () => {
  let n = await b.challenge();
  b.emit("broadcast", B.id, { streamId: stream, auth: signChallenge(B, "broadcast", stream, n) });
  await b.next("isStreaming");
  n = await w.challenge();
  w.emit("watch", W.id, { streamId: stream, auth: signChallenge(W, "watch", stream, n) });
  await b.next("watch");
  check(true, "joined");
});
let seq = 0;
async function stillServed(what) {
  await step(`well-behaved sockets still served (${what})`, async () => {
    const c = { candidate: `candidate:${++seq} 1 udp 1 127.0.0.1 ${40000 + seq} typ host`, sdpMid: "0", sdpMLineIndex: 0 };
    w.emit("candidate", B.id, { userId: W.id, streamId: stream, candidate: c });
    checkEqual(await b.next("candidate", ([id, p]) => p.candidate.candidate === c.candidate), [W.id, { candidate: c }],
      `broadcaster gets the watcher's candidate (${what})`);
    b.emit("candidate", W.id, { userId: B.id, streamId: stream, candidate: c });
    await w.next("candidate", ([id, p]) => p.candidate.candidate === c.candidate);
    check(true, `watcher gets the broadcaster's candidate (${what})`);
  });
}

await step("malformed Engine.IO packets close the session", async () => {
  for (const [frame, what] of [["x", "unknown type"], ["", "empty frame"], [Buffer.from([1, 2, 3]), "binary frame"], ["0{}", "open from a client"]]) {
    const r = new Raw();
    await r.opened;
    r.send(frame);
    check(await r.isClosed(), `${what} closes the session`);
  }
});

await step("malformed Socket.IO packets: an error, then a close", async () => {
  const r = new Raw();
  await r.connectSio();
  r.send("4{{{");
  await r.until(() => r.errors().length === 1, "an error event");
  check(r.errors()[0].startsWith("Malformed Socket.IO packet"), "first malformed packet gets error {message}", r.errors()[0]);
  r.send('42["connect"]');
  check(await r.isClosed(), "a second one within the strike window closes the socket");
  const early = new Raw();
  await early.opened;
  early.send('42["watch","0x00",{}]');
  check(await early.isClosed(), "an event before CONNECT closes the socket");
  const deep = new Raw();
  await deep.connectSio();
  deep.send("42" + "[".repeat(200) + "]".repeat(200));
  await deep.until(() => deep.errors().length === 1, "an error event");
  check(/deeper/.test(deep.errors()[0]), "JSON nested 200 deep is refused", deep.errors()[0]);
  deep.close();
});

await step("WebSocket framing: fragments, pings, unmasked frames", async () => {
  const r = new Raw();
  await r.connectSio();
  const q = '42["getIsStreaming",null,{"streamId":"fragmented"}]';
  r.ws.send(q.slice(0, 10), { fin: false });
  r.ws.send(q.slice(10, 30), { fin: false });
  r.ws.send(q.slice(30), { fin: true });
  await r.until(() => r.frames.includes('42["isStreaming",false]'), "the answer to a fragmented message");
  check(true, "a message in three fragments is put together");
  const pong = new Promise((resolve) => r.ws.once("pong", (d) => resolve(d.toString())));
  r.ws.ping("are you there");
  checkEqual(await pong, "are you there", "a WebSocket ping gets its pong");
  r.close();
  // An unmasked client frame, written by hand: the server must close with 1002.
  const port = Number(new URL(url).port);
  const got = await new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1", () => {
      sock.write("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    });
    let buf = Buffer.alloc(0);
    let sent = false;
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (!sent && buf.includes("\r\n\r\n")) {
        sent = true;
        sock.write(Buffer.from([0x81, 0x02, 0x34, 0x30]));  // "40", not masked
      }
    });
    sock.on("close", () => resolve(buf));
    sock.on("error", () => {});
    setTimeout(() => { sock.destroy(); resolve(buf); }, 3000);
  });
  const close = got.lastIndexOf(Buffer.from([0x88]));
  check(got.toString().startsWith("HTTP/1.1 101"), "the handshake succeeds");
  check(close > 0 && got.readUInt16BE(close + 2) === 1002, "an unmasked frame is answered with close 1002");
});

await step("wrong argument types get errors and no close", async () => {
  const r = new Raw();
  await r.connectSio();
  const bad = [
    ['["watch",123,{}]', /userId/],
    ['["broadcast","0xab"]', /must be an object/],
    ['["offer","x",{"streamId":5}]', /streamId/],
    ['["candidate",null,{"userId":"a","streamId":"s","candidate":"not an object"}]', /targetId/],
    ['["candidate","a",{"userId":"a","streamId":"s","candidate":{"candidate":7}}]', /candidate must be an object/],
    ['["answer","a",{"streamId":"s","userId":"u","description":{"type":"answer"}}]', /description/],
    ['["watch","0xab",{"streamId":"s","relay":{"slots":1000}}]', /relay/],
    ['["stopBroadcasting",{},{"streamId":"s"}]', /broadcasterId/],
  ];
  for (const [packet, re] of bad) r.send("42" + packet);
  await r.until(() => r.errors().length === bad.length, `${bad.length} error events`);
  const errs = r.errors();
  bad.forEach(([packet, re], i) => check(re.test(errs[i]), `${packet} -> error`, errs[i]));
  r.send('42["unknownEvent",1,2,3]');
  r.send('42["getIsStreaming",null,{"streamId":"nope"}]');
  await r.until(() => r.frames.includes('42["isStreaming",false]'), "the query answer");
  check(r.closed === null, "the socket stays open after argument errors and an unknown event");
  r.close();
});
await stillServed("after malformed input");

await step("oversize frames", async () => {
  const r = new Raw();
  await r.connectSio();
  const big = '42["getIsStreaming",null,{"streamId":"' + "x".repeat(8000) + '"}]';
  r.send(big);
  await r.until(() => r.errors().length === 1, "an error event");
  check(/exceeds the 4096-byte limit/.test(r.errors()[0]), "a packet over --max-frame gets an error", r.errors()[0]);
  r.send(big);
  check(await r.isClosed(), "a second one closes the socket");
  const huge = new Raw();
  await huge.connectSio();
  huge.send("4" + "x".repeat(2 << 20));
  check(await huge.isClosed(), "a 2 MiB frame (over the Engine.IO maxPayload) closes the socket");
});

await step("a flood from one socket", async () => {
  const r = new Raw();
  await r.connectSio();
  const flood = (async () => {
    for (let i = 0; i < 2000 && r.closed === null; i++) {
      r.send('42["getIsStreaming",null,{"streamId":"' + stream + '"}]');
      if (i % 50 === 0) await sleep(0);
    }
  })();
  await stillServed("during a flood");
  await flood;
  check(await r.isClosed(), "the flooding socket is closed");
  const answers = r.frames.filter((f) => f.startsWith('42["isStreaming"')).length;
  check(answers <= 80, "the flood got at most the burst answered", `${answers} answers`);
  check(r.errors().some((e) => e.startsWith("Too many messages")), "the flood was told to slow down");
});

await step("bad polling requests", async () => {
  const base = `${url}/socket.io/?EIO=4&transport=polling`;
  let r = await httpText(`${base}&sid=nope`);
  checkEqual([r.status, JSON.parse(r.text).code, JSON.parse(r.text).message], [400, 1, "Session ID unknown"], "unknown sid");
  r = await httpText(`${url}/socket.io/?EIO=3&transport=polling`);
  checkEqual([r.status, JSON.parse(r.text).code], [400, 5], "EIO=3 is an unsupported protocol version");
  r = await httpText(`${url}/socket.io/?EIO=4&transport=carrier-pigeon`);
  checkEqual([r.status, JSON.parse(r.text).code], [400, 0], "unknown transport");
  let p = await fetch(base, { method: "POST", body: "40" });
  checkEqual([p.status, (await p.json()).code], [400, 2], "POST without a session is a bad handshake method");
  const open = await httpText(base);
  const sid = JSON.parse(open.text.slice(1)).sid;
  p = await fetch(`${base}&sid=${sid}`, { method: "POST", body: "4" + "x".repeat(100000) });
  check(p.status === 413, "a body over --max-body is refused with 413", String(p.status));
  await p.text();
  r = await httpText(`${base}&sid=${sid}`);
  check(r.status === 400 && JSON.parse(r.text).code === 1, "and its session is closed");
  const open2 = await httpText(base);
  const sid2 = JSON.parse(open2.text.slice(1)).sid;
  p = await fetch(`${base}&sid=${sid2}`, { method: "POST", body: "40\x1ex" });
  await p.text();
  r = await httpText(`${base}&sid=${sid2}`);
  check(r.status === 400 && JSON.parse(r.text).code === 1, "a malformed polling body closes the session");
});

await step("a client that never answers pings is dropped", async () => {
  const r = new Raw({ pong: false });
  await r.connectSio();
  check(await r.isClosed(2500), "closed within pingInterval + pingTimeout (+ slack)");
  check(r.frames.includes("2"), "after the server pinged it");
});

await step("connections per IP are capped", async () => {
  const many = [];
  for (let i = 0; i < 45; i++) many.push(new Raw());
  const opened = await Promise.all(many.map((r) => r.opened));
  const refused = opened.filter((o) => !o).length;
  check(refused >= 7, "connections over --max-conn-per-ip 40 are refused", `${refused} refused`);
  check(many.some((r) => /403/.test(r.error || "")), "with HTTP 403", many.map((r) => r.error).filter(Boolean)[0]);
  many.forEach((r) => r.close());
  await sleep(200);
});
await stillServed("after the connection cap");

// Many rounds of junk and large frames, for the RSS bound the C++ test checks around this.
const rounds = Number(a.burst || 0);
if (rounds > 0) {
  await step(`burst of ${rounds} rounds`, async () => {
    const junk = "42" + JSON.stringify(["candidate", "x".repeat(100), { userId: "y".repeat(100), streamId: "z", candidate: { candidate: "c".repeat(3000) } }]);
    for (let i = 0; i < rounds; i++) {
      const conns = [];
      for (let k = 0; k < 30; k++) conns.push(new Raw());
      await Promise.all(conns.map((r) => r.opened));
      for (const r of conns) {
        r.send("40");
        for (let j = 0; j < 20; j++) r.send(junk);
        r.send("4" + "q".repeat(60000));
        r.send("4{{{");
      }
      await Promise.all(conns.map((r) => r.isClosed(3000)));
      conns.forEach((r) => r.close());
    }
    check(true, `${rounds} rounds of 30 abusive sockets`);
  });
  await stillServed("after the burst");
}

await step("metrics count the refusals", async () => {
  const m = (await httpText(`${url}/metrics`)).text;
  for (const reason of ["protocol", "rate_limited", "too_large", "bad_request", "too_many_connections"])
    check(metricValue(m, `p2pstream_signal_refusals_total{reason="${reason}"}`) >= 1, `refusals_total{reason="${reason}"} >= 1`);
});
b.close();
w.close();
finish();
