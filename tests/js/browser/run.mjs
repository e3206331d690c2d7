// Browser interop runner: headless Debian chromium (playwright-core) loads w3b_page.html from a tiny
// loopback HTTP server and plays the w3bstreaming web app against `p2pstream signal`, facing
// `p2pstream broadcast` / `p2pstream watch` (spawned here) or a second page. Prints one JSON line.
//
//   node run.mjs --case watch-cli|broadcast-cli|browser-pair --url SIGNAL_URL --stream ID
//        --page-seed 0xSEED [--peer-seed 0xSEED] [--bin p2pstream] [--cli-account NAME]
//        [--out FILE.mkv] [--min-frames 30] [--timeout 30] [--chromium /usr/bin/chromium]
//
// Exit 0 when every check passed, 1 when one failed, 2 on a setup problem (no chromium, bad args).
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { cryptoWaitReady, ed25519PairFromSeed, ed25519Sign } from "@polkadot/util-crypto";
import { hexToU8a, stringToU8a, u8aToHex } from "@polkadot/util";

const here = path.dirname(fileURLToPath(import.meta.url));
const a = {};
for (let i = 2; i < process.argv.length; i += 2) {
  if (!process.argv[i].startsWith("--")) fail(2, `unexpected argument ${process.argv[i]}`);
  a[process.argv[i].slice(2)] = process.argv[i + 1];
}
const minFrames = Number(a["min-frames"] || 30);
const timeoutMs = Number(a.timeout || 30) * 1000;
const chromiumPath = a.chromium || "/usr/bin/chromium";
const result = { case: a.case, checks: [], ok: false };
const t0 = Date.now();
const mark = (what) => { (result.timeline ??= []).push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`); };

function fail(code, message) {
  console.log(JSON.stringify({ case: a?.case, ok: false, setup_error: message }));
  process.exit(code);
}
function check(cond, what, detail) {
  result.checks.push({ ok: !!cond, what, ...(cond ? {} : { detail }) });
  return cond;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms, step = 200) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await pred();
    if (v) return v;
    await sleep(step);
  }
  return null;
}

for (const k of ["case", "url", "stream", "page-seed"]) if (!a[k]) fail(2, `--${k} is required`);
if (!fs.existsSync(chromiumPath)) fail(2, `chromium not found at ${chromiumPath}: install Debian's chromium (scripts/install-deps.sh)`);

await cryptoWaitReady();
const account = (seed) => {
  const pair = ed25519PairFromSeed(hexToU8a(seed));
  return { pair, id: u8aToHex(pair.publicKey) };
};
const sign = (acc, role, streamId, nonce) => ({
  publicKey: acc.id,
  signature: u8aToHex(ed25519Sign(stringToU8a(`p2pstream-signal:v1:${role}:${streamId}:${nonce}`), acc.pair)),
});

// ---- the page's origin: 127.0.0.1, port 0
const files = {
  "/w3b_page.html": [path.join(here, "w3b_page.html"), "text/html"],
  "/w3b_page.mjs": [path.join(here, "w3b_page.mjs"), "text/javascript"],
  "/socket.io.min.js": [path.join(here, "..", "node_modules/socket.io-client/dist/socket.io.min.js"), "text/javascript"],
};
const server = http.createServer((req, res) => {
  const f = files[new URL(req.url, "http://x").pathname];
  if (!f) { res.writeHead(404).end(); return; }
  res.writeHead(200, { "content-type": f[1], "cache-control": "no-store" }).end(fs.readFileSync(f[0]));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

// ---- chromium, headless and quiet on the network: nothing but loopback
const flags = [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
  "--disable-extensions", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
  "--disable-breakpad", "--metrics-recording-only", "--no-pings", "--disable-quic",
  `--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,NetworkTimeServiceQuerying${a.mdns === "on" ? "" : ",WebRtcHideLocalIpsWithMdns"}`,
  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
  // WebRtcHideLocalIpsWithMdns (above) off: plain host candidates, no mDNS names to resolve
  // (--mdns on keeps Chrome's default, which hides them behind .local names on pages without a camera).
  "--force-webrtc-ip-handling-policy=default",
];
const userData = fs.mkdtempSync("/tmp/p2p-chromium-");
let browser;
try {
  browser = await chromium.launch({ executablePath: chromiumPath, args: flags, headless: true, timeout: 30000,
                                    env: { ...process.env, HOME: userData } });
} catch (e) {
  fail(2, `cannot start chromium (${chromiumPath}): ${String(e.message).split("\n")[0]}`);
}

mark("chromium started");
const children = [];
const openPages = [];
async function openPage(role, seed, extra = {}) {
  const acc = account(seed);
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300)));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.exposeFunction("p2pSign", (r, streamId, nonce) => sign(acc, r, streamId, nonce));
  const qs = new URLSearchParams({ signal: a.url, stream: a.stream, id: acc.id, role, ...extra });
  await page.goto(`${origin}/w3b_page.html?${qs}`);
  mark(`page loaded as ${role}`);
  const st = () => page.evaluate(() => window.__state);
  const p = { page, acc, st, consoleLines };
  openPages.push(p);
  return p;
}

// `p2pstream ARGS`, output collected; stops with SIGINT like Ctrl-C.
function cli(args) {
  const p = spawn(a.bin, args, { stdio: ["ignore", "pipe", "pipe"], env: process.env });
  const c = { p, out: "", err: "", code: null };
  p.stdout.on("data", (d) => { c.out += d; });
  p.stderr.on("data", (d) => { c.err += d; });
  c.done = new Promise((r) => p.on("exit", (code, sig) => { c.code = code ?? 128 + (sig === "SIGINT" ? 2 : 9); r(c.code); }));
  children.push(c);
  return c;
}
async function stopCli(c, ms = 8000) {
  if (c.code !== null) return c.code;
  c.p.kill("SIGINT");
  if ((await Promise.race([c.done, sleep(ms).then(() => "late")])) === "late") {
    c.p.kill("SIGKILL");
    await c.done;
    c.killed = true;
  }
  return c.code;
}
const tail = (s, n = 1500) => (s.length > n ? "…" + s.slice(-n) : s);
const mlines = (sdp) => (sdp || "").split(/\r?\n/).filter((l) => /^(m=|a=(sendonly|recvonly|sendrecv|inactive|mid:|rtpmap|group))/.test(l));

// The page watches; `src` is the broadcaster (a CLI process, or another page).
async function pageWatches(w, describe) {
  const got = await until(async () => {
    const s = await w.st();
    if (s.errors.some((e) => e.startsWith("offer rejected"))) return "rejected";  // nothing more will come
    return s.frames >= minFrames && s.video && s.video.framesDecoded >= minFrames && s.audio && s.audio.totalSamplesReceived > 0 && s.analyserPeak > 0 ? s : null;
  }, timeoutMs, 250);
  mark(got === "rejected" ? "page rejected the offer" : got ? "page watched enough" : "page gave up watching");
  const s = await w.st();
  result.watcher = {
    frames: s.frames, presentedFrames: s.presentedFrames, videoSize: s.videoSize, video: s.video, audio: s.audio,
    analyserPeak: s.analyserPeak, tracks: s.tracks, pcState: s.pcState, errors: s.errors, watchersCount: s.watchersCount,
    offer: mlines(s.remoteSdp), answer: mlines(s.localSdp), log: s.log.slice(-20), console: w.consoleLines.slice(-20),
  };
  check(s.remoteSdp.startsWith("v=0"), `the page got an offer from ${describe}`, s.errors.join("; "));
  check(s.pcState === "connected", "the page's peer connection is connected", s.pcState);
  check(s.frames >= minFrames, `the page presented at least ${minFrames} video frames (requestVideoFrameCallback)`, `${s.frames}`);
  check(s.video && s.video.framesDecoded >= minFrames, "inbound-rtp video framesDecoded", JSON.stringify(s.video));
  check(s.audio && s.audio.totalSamplesReceived > 0, "inbound-rtp audio totalSamplesReceived > 0", JSON.stringify(s.audio));
  check(s.analyserPeak > 0.01, "the audio is not silence (WebAudio analyser peak)", `${s.analyserPeak}`);
  check(s.errors.length === 0, "no errors in the page", s.errors.join("; "));
  return got;
}

async function pageBroadcasts(b) {
  const live = await until(async () => (await b.st()).live, 10000);
  check(live, "the page is live (isStreaming true after its authenticated broadcast)", JSON.stringify((await b.st()).errors));
  return live;
}

async function watchCli() {
  if (!a.bin) fail(2, "--bin is required");
  const bargs = ["broadcast", a.stream, "--source", "test", "--signal", a.url, ...(a["cli-account"] ? ["--account", a["cli-account"]] : []),
                 ...(a["cli-args"] ? JSON.parse(a["cli-args"]) : [])];
  const b = cli(bargs);
  // Watching before the broadcast is live is fine: the page retries on "hasn't started yet".
  const w = await openPage("watch", a["page-seed"], a.experiment ? { experiment: a.experiment } : {});
  await pageWatches(w, "p2pstream broadcast");
  result.cli = { args: bargs };
  const code = await stopCli(b);
  const st = await until(async () => (await w.st()).ended, 3000);
  check(st, "the page heard stopBroadcasting when the CLI stopped on SIGINT", "");
  check(code === 0 && !b.killed, "p2pstream broadcast exits 0 on SIGINT", `exit ${code}${b.killed ? " (killed)" : ""}`);
  result.cli.exit = code;
  result.cli.stderr = tail(b.err);
}

async function broadcastCli() {
  if (!a.bin || !a.out) fail(2, "--bin and --out are required");
  const b = await openPage("broadcast", a["page-seed"], { screen: a.screen || "inactive" });
  if (!(await pageBroadcasts(b))) return;
  const duration = a.duration || "5";
  const wargs = ["watch", a.stream, "--signal", a.url, "--output", a.out, "--duration", duration, "--stats=json",
                 ...(a["cli-account"] ? ["--account", a["cli-account"]] : []), ...(a["cli-args"] ? JSON.parse(a["cli-args"]) : [])];
  const w = cli(wargs);
  const code = await Promise.race([w.done, sleep(Number(duration) * 1000 + 20000).then(() => "late")]);
  if (code === "late") await stopCli(w, 3000);
  const s = await b.st();
  const stats = w.out.split("\n").filter((l) => l.startsWith("{")).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
  const last = stats[stats.length - 1] || {};
  result.cli = { args: wargs, exit: w.code, stderr: tail(w.err), stats: stats.slice(-3) };
  result.page = { served: s.served, offer: mlines(s.localSdp), answer: mlines(s.remoteSdp), errors: s.errors, log: s.log.slice(-20),
                  console: b.consoleLines.slice(-20) };
  const served = Object.values(s.served);
  check(served.length === 1 && served[0].answered, "the page made an offer and applied p2pstream's answer", JSON.stringify(s.served) + " " + s.errors.join("; "));
  check(served.length === 1 && served[0].pcState === "connected", "the page's peer connection to p2pstream watch connected", JSON.stringify(s.served));
  check(w.code === 0 && code !== "late", "p2pstream watch --duration exits 0", `exit ${w.code}`);
  // The last --stats=json line can be up to a second old at exit; the closing summary line on
  // stderr ("stopped (...): N video frames, M audio buffers") gives the totals.
  const maxOf = (k) => Math.max(0, ...stats.map((x) => x[k] ?? 0));
  const summary = /(\d+) video frames, (\d+) audio buffers/.exec(w.err);
  result.cli.summary = summary ? { frames: Number(summary[1]), audio_buffers: Number(summary[2]) } : null;
  check(maxOf("frames_decoded") > 0 && stats.some((x) => x.state === "playing" && x.video_codec),
        "--stats=json lines show the recording playing, with frames and the codec", JSON.stringify(last));
  check(maxOf("audio_buffers") > 0, "--stats=json lines show audio buffers", JSON.stringify(last));
  check(summary && Number(summary[1]) >= minFrames, `p2pstream watch recorded at least ${minFrames} video frames`, w.err.slice(-300));
  check(summary && Number(summary[2]) > 0, "p2pstream watch recorded audio", w.err.slice(-300));
  check(fs.existsSync(a.out) && fs.statSync(a.out).size > 10000, "the recording exists and is not empty", fs.existsSync(a.out) ? `${fs.statSync(a.out).size} bytes` : "missing");
  const d = spawnSync("gst-discoverer-1.0", [a.out], { encoding: "utf8", timeout: 20000 });
  result.discoverer = (d.stdout || "") + (d.stderr || "");
  check(d.status === 0 && /video #\d+: (VP8|H\.264)/.test(result.discoverer), "gst-discoverer finds the video stream", tail(result.discoverer, 800));
  check(/audio #\d+: Opus/.test(result.discoverer), "gst-discoverer finds the Opus audio stream", tail(result.discoverer, 800));
  await b.page.evaluate(() => window.p2pStop());
}

async function browserPair() {
  if (!a["peer-seed"]) fail(2, "--peer-seed is required");
  // --watch-first: the watcher is told "hasn't started yet" and retries until the broadcast is live.
  const watchFirst = a["watch-first"] === "yes";
  const w0 = watchFirst ? await openPage("watch", a["page-seed"], a.dialect ? { dialect: a.dialect } : {}) : null;
  if (w0) check(await until(async () => (await w0.st()).notices.length > 0, 8000), "the early watcher is told the stream has not started", "");
  const b = await openPage("broadcast", a["peer-seed"], { screen: a.screen || "inactive", ...(a.dialect ? { dialect: a.dialect } : {}) });
  if (!(await pageBroadcasts(b))) return;
  const w = w0 || await openPage("watch", a["page-seed"], a.dialect ? { dialect: a.dialect } : {});
  await pageWatches(w, "the broadcasting page");
  const s = await b.st();
  check(Object.values(s.served).some((x) => x.pcState === "connected"), "the broadcasting page served the watching page", JSON.stringify(s.served));
}

const cases = { "watch-cli": watchCli, "broadcast-cli": broadcastCli, "browser-pair": browserPair };
if (!cases[a.case]) fail(2, `unknown --case ${a.case}`);
const hardStop = setTimeout(() => { result.checks.push({ ok: false, what: "finished within the runner's limit" }); finish(); }, timeoutMs + 40000);
try {
  await cases[a.case]();
} catch (e) {
  check(false, "the case ran without throwing", String(e && e.stack || e).slice(0, 1500));
}
await finish();

// --dump-sdp DIR: the full offer and answer each page saw, for reports on what a peer could not take.
async function dumpSdp(pages) {
  if (!a["dump-sdp"]) return;
  fs.mkdirSync(a["dump-sdp"], { recursive: true });
  for (const p of pages) {
    const s = await p.st().catch(() => null);
    if (!s) continue;
    fs.writeFileSync(path.join(a["dump-sdp"], `${s.role}-local.sdp`), s.localSdp || "");
    fs.writeFileSync(path.join(a["dump-sdp"], `${s.role}-remote.sdp`), s.remoteSdp || "");
  }
}

async function finish() {
  clearTimeout(hardStop);
  await dumpSdp(openPages);
  for (const c of children) await stopCli(c, 3000);
  result.ok = result.checks.length > 0 && result.checks.every((c) => c.ok);
  mark("done");
  console.log(JSON.stringify(result));
  await browser.close().catch(() => {});
  console.error(`closed after ${Date.now() - t0} ms`);
  server.close();
  fs.rmSync(userData, { recursive: true, force: true });
  process.exit(result.ok ? 0 : 1);
}
