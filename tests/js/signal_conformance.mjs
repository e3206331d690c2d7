// Conformance of `p2pstream signal` against npm's socket.io-client v4, the client the w3bstreaming
// web app uses. Driven by tests/cli/signal_test.cpp, which prepares the embedded ledger (keys with
// the seeds below, profiles, a scheduled stream, subscriptions) and starts the server.
//
//   node signal_conformance.mjs --url http://127.0.0.1:PORT --stream STREAM_ID --case NAME
//        --broadcaster SEED --watcher SEED --watcher2 SEED --outsider SEED [--transports polling,websocket]
//
// broadcaster owns STREAM_ID; watcher and watcher2 subscribe to the broadcaster; outsider has a
// profile but no subscription. Prints one "ok - ..." / "not ok - ..." line per check; exit 1 on failure.
import {
  Peer, account, args, check, checkEqual, deepEqual, finish, httpText, legacySignature, metricValue, ready,
  signChallenge, step,
} from "./signal_lib.mjs";

const a = args();
const url = a.url;
const stream = a.stream;
const transports = (a.transports || "polling,websocket").split(",");
await ready();
const B = account(a.broadcaster);
const W = account(a.watcher);
const W2 = account(a.watcher2);
const O = account(a.outsider);

const peer = (name, opts = {}) => new Peer(url, name, { transports, ...opts });
const sdpOffer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
const sdpAnswer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n";
const cand = (n) => ({ candidate: `candidate:${n} 1 udp 2122260223 127.0.0.1 ${50000 + n} typ host`, sdpMid: "0", sdpMLineIndex: 0 });

async function broadcast(p, acc = B, id = stream) {
  const nonce = await p.challenge();
  p.emit("broadcast", acc.id, { streamId: id, auth: signChallenge(acc, "broadcast", id, nonce) });
}
async function watch(p, acc, extra = {}) {
  const nonce = await p.challenge();
  p.emit("watch", acc.id, { streamId: stream, auth: signChallenge(acc, "watch", stream, nonce), ...extra });
}
const having = async (acc) => (await httpText(`${url}/is-already-having-stream?address=${acc.id}`)).text;
const error = (p, text) => p.next("error", ([e]) => e && e.message === text);

async function exchange() {
  const b = peer("broadcaster");
  await step("broadcaster goes live", async () => {
    checkEqual(await having(B), "false", "is-already-having-stream is false before broadcast");
    await broadcast(b);
    checkEqual(await b.next("isStreaming"), [true], "broadcaster gets isStreaming(true)");
    const [first] = await b.next("challenge");
    const [c] = await b.next("challenge");
    check(/^0x[0-9a-f]{64}$/.test(c.nonce) && c.expires > Date.now() && c.nonce !== first.nonce,
      "a fresh challenge {nonce, expires} follows the spent one", JSON.stringify([first, c]));
    checkEqual(await having(B), "true", "is-already-having-stream is true while live");
  });
  const w = peer("watcher");
  await step("watcher joins", async () => {
    await watch(w, W);
    checkEqual(await b.next("watch"), [W.id, { streamId: stream }], "broadcaster gets watch(userId, {streamId})");
    checkEqual(await w.next("watchersCount"), [1], "watcher gets watchersCount(1)");
    checkEqual(await w.next("isStreaming"), [true], "watcher gets isStreaming(true)");
    checkEqual(await b.next("watchersCount"), [1], "broadcaster gets watchersCount(1)");
    checkEqual(await b.next("isStreaming"), [true], "broadcaster gets isStreaming(true) again");
  });
  await step("offer, answer and candidates are relayed unchanged", async () => {
    const offer = { streamId: stream, userId: W.id, description: { type: "offer", sdp: sdpOffer } };
    b.emit("offer", B.id, offer);
    checkEqual(await w.next("offer"), [B.id, offer], "watcher gets offer(broadcasterId, payload)");
    const answer = { streamId: stream, userId: W.id, description: { type: "answer", sdp: sdpAnswer } };
    w.emit("answer", B.id, answer);
    checkEqual(await b.next("answer"), [B.id, answer], "broadcaster gets answer(broadcasterId, payload)");
    w.emit("candidate", B.id, { userId: W.id, streamId: stream, candidate: cand(1) });
    checkEqual(await b.next("candidate"), [W.id, { candidate: cand(1) }], "broadcaster gets candidate(userId, {candidate})");
    b.emit("candidate", W.id, { userId: B.id, streamId: stream, candidate: cand(2) });
    checkEqual(await w.next("candidate"), [B.id, { candidate: cand(2) }], "watcher gets candidate(broadcasterId, {candidate})");
    const nulls = { candidate: "", sdpMid: null, sdpMLineIndex: null };
    w.emit("candidate", B.id, { userId: W.id, streamId: stream, candidate: nulls });
    checkEqual(await b.next("candidate"), [W.id, { candidate: nulls }], "an end-of-candidates candidate passes too");
  });
  await step("queries", async () => {
    w.emit("getWatchersCount", W.id, { streamId: stream });
    checkEqual(await w.next("watchersCount"), [1], "getWatchersCount answers watchersCount(1)");
    w.emit("getIsStreaming", W.id, { streamId: stream });
    checkEqual(await w.next("isStreaming"), [true], "getIsStreaming answers isStreaming(true)");
    w.emit("getIsStreaming", null, { streamId: "no-such-stream" });
    checkEqual(await w.next("isStreaming"), [false], "getIsStreaming of an unknown stream answers false");
  });
  if (transports.length > 1) {
    await step("polling upgrades to websocket", async () => {
      const engine = b.socket.io.engine;
      if (engine.transport.name !== "websocket") await new Promise((r) => engine.once("upgrade", r));
      checkEqual(engine.transport.name, "websocket", "broadcaster's transport after upgrade");
      const m = await httpText(`${url}/metrics`);
      check(metricValue(m.text, "p2pstream_signal_upgrades_total") >= 1, "metrics count the upgrade");
    });
  } else {
    checkEqual(b.socket.io.engine.transport.name, transports[0], `${transports[0]}-only transport`);
  }
  await step("stopWatching", async () => {
    w.emit("stopWatching", W.id, { streamId: stream });
    checkEqual(await b.next("stopWatching"), [W.id, { streamId: stream }], "broadcaster gets stopWatching(userId, {streamId})");
    checkEqual(await b.next("watchersCount"), [0], "broadcaster gets watchersCount(0)");
  });
  await step("watch again, then stopBroadcasting", async () => {
    await watch(w, W);
    checkEqual(await b.next("watch"), [W.id, { streamId: stream }], "broadcaster gets the second watch");
    w.drop("watchersCount");
    w.drop("isStreaming");
    b.emit("stopBroadcasting", B.id, { streamId: stream });
    checkEqual(await w.next("isStreaming", ([v]) => v === false), [false], "watcher gets isStreaming(false)");
    checkEqual(await w.next("stopBroadcasting"), [B.id, { streamId: stream, userId: W.id }],
      "watcher gets stopBroadcasting(broadcasterId, {streamId, userId})");
    checkEqual(await having(B), "false", "is-already-having-stream is false after stopBroadcasting");
  });
  await step("metrics", async () => {
    const m = await httpText(`${url}/metrics`);
    check(m.status === 200 && m.type.startsWith("text/plain"), "GET /metrics is Prometheus text");
    check(metricValue(m.text, "p2pstream_signal_messages_relayed_total") === 5, "messages relayed are counted",
      String(metricValue(m.text, "p2pstream_signal_messages_relayed_total")));
    check(metricValue(m.text, "p2pstream_signal_connections") === 2, "two connections are open");
    check(metricValue(m.text, "p2pstream_signal_chain_lookups_total") >= 2, "chain lookups are counted");
  });
  b.close();
  w.close();
}

async function refusals() {
  const w = peer("watcher");
  await step("watch before the stream starts", async () => {
    await watch(w, W);
    await error(w, `Stream with id ${stream} hasn't started yet`);
    check(true, "refused: Stream with id <id> hasn't started yet");
  });
  const o = peer("outsider");
  await step("broadcast by someone who does not own the stream", async () => {
    await broadcast(o, O);
    await error(o, `Only the broadcaster of stream ${stream} may start it`);
    check(true, "refused: only the stream's broadcaster may start it");
  });
  const b = peer("broadcaster");
  await step("broadcast without auth", async () => {
    await b.next("challenge");  // connected; the nonce stays unused
    b.emit("broadcast", B.id, { streamId: stream });
    await b.next("error", ([e]) => e.message.startsWith("Signature isn't valid"));
    check(true, "refused: broadcast needs auth");
  });
  await step("broadcast, then a second one", async () => {
    await broadcast(b);
    checkEqual(await b.next("isStreaming"), [true], "owner's broadcast is accepted");
    const b2 = peer("broadcaster-2");
    await broadcast(b2);
    await error(b2, "You already have a stream running");
    check(true, "refused: You already have a stream running");
    b2.close();
  });
  await step("watch by a non-subscriber", async () => {
    await watch(o, O);
    await error(o, "You aren't subscribed to this speaker");
    check(true, "refused: You aren't subscribed to this speaker");
  });
  await step("bad signature", async () => {
    const nonce = await w.challenge();
    const auth = signChallenge(W, "watch", "another-stream", nonce);
    w.emit("watch", W.id, { streamId: stream, auth });
    await error(w, "Signature isn't valid");
    check(true, "refused: signature over another stream id");
    const nonce2 = await w.challenge();
    w.emit("watch", W.id, { streamId: stream, auth: { publicKey: O.id, signature: signChallenge(O, "watch", stream, nonce2).signature } });
    await w.next("error", ([e]) => e.message.startsWith("Signature isn't valid"));
    check(true, "refused: a key that is not the given id");
  });
  await step("watch without auth (legacy mode off)", async () => {
    w.emit("watch", W.id, { streamId: stream, signedMsg: legacySignature(W), encodedId: W.address });
    await w.next("error", ([e]) => e.message.startsWith("Signature isn't valid"));
    check(true, "refused: legacy signedMsg without --legacy-auth");
  });
  await step("replayed nonce", async () => {
    const nonce = await w.challenge();
    const auth = signChallenge(W, "watch", stream, nonce);
    w.emit("watch", W.id, { streamId: stream, auth });
    checkEqual(await b.next("watch"), [W.id, { streamId: stream }], "a fresh signature is accepted");
    w.emit("watch", W.id, { streamId: stream, auth });
    await error(w, "Signature isn't valid");
    check(true, "refused: the same signature again on the same socket");
    w.emit("watch", W.id, { streamId: stream, auth: { ...auth, nonce } });
    await w.next("error", ([e]) => e.message.startsWith("Challenge nonce is not this connection's latest"));
    check(true, "refused: a spent nonce, named as such");
    const thief = peer("thief");
    await thief.next("challenge");
    thief.emit("watch", W.id, { streamId: stream, auth });
    await error(thief, "Signature isn't valid");
    check(true, "refused: the signature replayed on another socket");
    check(await b.none("watch", () => true, 300), "the broadcaster saw no replayed watch");
    thief.close();
  });
  await step("refusals are counted by reason", async () => {
    const m = (await httpText(`${url}/metrics`)).text;
    for (const reason of ["not_started", "not_subscribed", "bad_signature", "not_owner", "already_live", "stale_nonce"]) {
      const v = metricValue(m, `p2pstream_signal_refusals_total{reason="${reason}"}`);
      check(v >= 1, `refusals_total{reason="${reason}"} >= 1`, String(v));
    }
  });
  for (const p of [w, o, b]) p.close();
}

async function disconnect() {
  const b = peer("broadcaster");
  await broadcast(b);
  await b.next("isStreaming");
  const w = peer("watcher");
  const w2 = peer("watcher-2");
  await step("two watchers join", async () => {
    await watch(w, W);
    await b.next("watch", ([id]) => id === W.id);
    await watch(w2, W2);
    await b.next("watch", ([id]) => id === W2.id);
    await b.next("watchersCount", ([n]) => n === 2);
    check(true, "watchersCount reaches 2");
  });
  await step("a watcher's transport drops", async () => {
    w.socket.io.engine.close();  // no Socket.IO DISCONNECT: as if the tab closed
    checkEqual(await b.next("stopWatching"), [W.id, { streamId: stream }], "broadcaster gets stopWatching for it");
    checkEqual(await b.next("watchersCount", ([n]) => n === 1), [1], "broadcaster gets watchersCount(1)");
    checkEqual(await w2.next("watchersCount", ([n]) => n === 1), [1], "the other watcher gets watchersCount(1)");
  });
  await step("the broadcaster's transport drops", async () => {
    b.socket.io.engine.close();
    checkEqual(await w2.next("isStreaming", ([v]) => v === false), [false], "watcher gets isStreaming(false)");
    checkEqual(await w2.next("stopBroadcasting"), [B.id, { streamId: stream, userId: W2.id }], "watcher gets stopBroadcasting");
    checkEqual(await having(B), "false", "is-already-having-stream is false");
    const m = (await httpText(`${url}/metrics`)).text;
    checkEqual(metricValue(m, "p2pstream_signal_connections"), 1, "only the remaining watcher is connected");
    checkEqual(metricValue(m, "p2pstream_signal_streams"), 0, "no stream is live");
    checkEqual(metricValue(m, "p2pstream_signal_watchers"), 0, "no watcher is counted");
  });
  w2.close();
}

async function legacy(enabled) {
  const b = peer("broadcaster");
  await broadcast(b);
  await b.next("isStreaming");
  const w = peer("watcher");
  await w.next("challenge");
  w.emit("watch", W.id, { streamId: stream, signedMsg: legacySignature(W, true), encodedId: W.address });
  if (!enabled) {
    await step("legacy signedMsg is refused without --legacy-auth", async () => {
      await w.next("error", ([e]) => e.message === "Signature isn't valid: this server needs auth {publicKey, signature} over the challenge");
      check(true, "refused with a message that names the challenge");
    });
  } else {
    await step("legacy signedMsg (<Bytes>-wrapped) is accepted", async () => {
      checkEqual(await b.next("watch"), [W.id, { streamId: stream }], "broadcaster gets the watch");
    });
    await step("legacy signedMsg (bare) is accepted", async () => {
      const w2 = peer("watcher-2");
      await w2.next("challenge");
      w2.emit("watch", W2.id, { streamId: stream, signedMsg: legacySignature(W2, false), encodedId: W2.address });
      checkEqual(await b.next("watch", ([id]) => id === W2.id), [W2.id, { streamId: stream }], "broadcaster gets the watch");
      w2.close();
    });
    await step("legacy signedMsg must match userId", async () => {
      const o = peer("outsider");
      await o.next("challenge");
      o.emit("watch", W.id, { streamId: stream, signedMsg: legacySignature(O, true), encodedId: O.address });
      await error(o, "Signature isn't valid");
      check(true, "someone else's signedMsg for userId is refused");
      o.close();
    });
  }
  b.close();
  w.close();
}

const cases = { exchange, refusals, disconnect, legacy: () => legacy(true), "legacy-off": () => legacy(false) };
if (!cases[a.case]) {
  console.error(`unknown --case ${a.case}; one of ${Object.keys(cases).join(", ")}`);
  process.exit(2);
}
const watchdog = setTimeout(() => {
  check(false, `case ${a.case} finished within 30 s`);
  finish();
}, 30000);
await step(`case ${a.case}`, cases[a.case]);
clearTimeout(watchdog);
finish();
