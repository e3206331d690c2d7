// Interop test page logic: socket.io-client + RTCPeerConnection following the w3bstreaming web app's
// event flow (Broadcast.tsx / Watch.tsx), plus p2pstream's challenge auth. run.mjs reads window.__state.
//
// Query: ?signal=URL&stream=ID&id=0xACCOUNT&role=watch|broadcast&screen=none|inactive&dialect=spec|app
// The runner exposes window.p2pSign(role, streamId, nonce) -> {publicKey, signature} (ed25519 in Node).

const q = new URLSearchParams(location.search);
const signalUrl = q.get("signal");
const streamId = q.get("stream");
const myId = q.get("id");
const role = q.get("role");
const screen = q.get("screen") || "inactive";
// dialect=app sends the deployed app's exact answer/candidate payloads ({watcherId, description},
// {id, candidate}); the default adds the userId/streamId that signalling.md fixes.
const appDialect = q.get("dialect") === "app";
const candidatePayload = (candidate) =>
  appDialect ? { id: myId, candidate } : { userId: myId, id: myId, streamId, candidate };

const state = (window.__state = {
  role, id: myId, connected: false, live: false, errors: [], notices: [], log: [],
  remoteSdp: "", localSdp: "", pcState: "new", tracks: [], frames: 0, presentedFrames: 0,
  analyserPeak: 0, watchersCount: null, served: {}, ended: false,
});
const log = (s) => { state.log.push(`${(performance.now() / 1000).toFixed(2)} ${s}`); };

// Same transport order as the app's socket.io-client default (polling first, then upgrade).
const socket = io(signalUrl, { reconnection: false, timeout: 5000 });

// p2pstream's challenge: each broadcast/watch spends one nonce; the server sends a fresh one after.
let nonce = null;
const nonceWaiters = [];
socket.on("challenge", (c) => {
  nonce = c && c.nonce;
  while (nonce && nonceWaiters.length) nonceWaiters.shift()();
});
function takeNonce() {
  return new Promise((resolve) => {
    const take = () => { const n = nonce; nonce = null; resolve(n); };
    if (nonce) take(); else nonceWaiters.push(take);
  });
}
async function auth(r) {
  return window.p2pSign(r, streamId, await takeNonce());
}

socket.on("connect", () => { state.connected = true; log("connected " + socket.io.engine.transport.name); });
socket.on("disconnect", (why) => { state.connected = false; log("disconnect " + why); });
socket.on("connect_error", (e) => state.errors.push("connect_error: " + (e && e.message)));
socket.on("watchersCount", (n) => { state.watchersCount = n; });
socket.on("isStreaming", (b) => { state.live = b === true; });

const rtcConfig = { iceServers: [], bundlePolicy: "max-bundle" };  // loopback only: no STUN/TURN

// ---------------------------------------------------------------- watcher (Watch.tsx)
function watcher() {
  let pc = null;
  let retry = null;

  const sendWatch = async () => socket.emit("watch", myId, { streamId, auth: await auth("watch") });

  socket.on("error", ({ message } = {}) => {
    if (message === `Stream with id ${streamId} hasn't started yet`) {
      state.notices.push(message);
      // The app retries every 2 s while the stream has not started; one retry at a time here.
      if (!retry) retry = setTimeout(() => { retry = null; sendWatch(); }, 1000);
    } else {
      state.errors.push("error: " + message);
    }
  });

  socket.on("offer", async (broadcasterId, msg) => {
    if (!msg || msg.userId !== myId) return;
    log("offer from " + broadcasterId);
    if (pc) pc.close();
    pc = new RTCPeerConnection(rtcConfig);
    state.remoteSdp = msg.description.sdp;
    pc.onicecandidate = (ev) => {
      if (!ev.candidate) return;
      // The app sends {candidate, id}; our server's protocol also wants userId and streamId.
      socket.emit("candidate", broadcasterId, candidatePayload(ev.candidate));
    };
    pc.onconnectionstatechange = () => { state.pcState = pc.connectionState; log("pc " + pc.connectionState); };
    pc.ontrack = (ev) => {
      state.tracks.push({ kind: ev.track.kind, mid: ev.transceiver.mid, streams: ev.streams.length });
      // Like the app: the broadcaster's stream goes to the player once; with several video tracks
      // (camera, screen capture) the element plays the first. Audio is measured per first track.
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      if (ev.track.kind === "video" && !state.playing) { state.playing = stream.id; showVideo(stream); }
      if (ev.track.kind === "audio" && !state.listening) { state.listening = true; listen(new MediaStream([ev.track])); }
      log("track " + ev.track.kind + " mid " + ev.transceiver.mid + " stream " + stream.id);
    };
    try {
      await pc.setRemoteDescription(q.get("experiment") === "strip-audio-rtx" ? stripAudioRtx(msg.description) : msg.description);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      state.localSdp = pc.localDescription.sdp;
      const description = { type: pc.localDescription.type, sdp: pc.localDescription.sdp };
      socket.emit("answer", broadcasterId,
                  appDialect ? { watcherId: myId, description } : { streamId, userId: myId, watcherId: myId, description });
    } catch (e) {
      state.errors.push("offer rejected: " + e);
    }
  });

  socket.on("candidate", (_from, msg) => {
    if (!msg || !msg.candidate || !msg.candidate.candidate) return;
    // The app calls addIceCandidate at once: Chrome chains it behind a pending setRemoteDescription,
    // but one that arrives before any offer fails there, so it counts as an error here too.
    if (!pc) { state.errors.push("candidate before the offer: " + msg.candidate.candidate); return; }
    pc.addIceCandidate(msg.candidate).catch((e) => state.errors.push("addIceCandidate: " + e));
  });

  socket.on("stopBroadcasting", () => { state.ended = true; log("stopBroadcasting"); });

  socket.on("connect", sendWatch);

  // Frame and sample counts from the inbound RTP streams, once a second.
  setInterval(async () => {
    if (!pc) return;
    const stats = await pc.getStats();
    const codecs = {};
    stats.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      // Several video m-lines (camera, screen capture): report the one that carries frames.
      if (s.kind === "video" && (!state.video || (s.framesDecoded || 0) >= (state.video.framesDecoded || 0))) {
        state.video = { framesDecoded: s.framesDecoded, framesReceived: s.framesReceived, packetsLost: s.packetsLost,
                        width: s.frameWidth, height: s.frameHeight, codec: codecs[s.codecId], keyFramesDecoded: s.keyFramesDecoded };
      } else if (s.kind === "audio" && (!state.audio || (s.totalSamplesReceived || 0) >= (state.audio.totalSamplesReceived || 0))) {
        state.audio = { totalSamplesReceived: s.totalSamplesReceived, audioLevel: s.audioLevel,
                        totalAudioEnergy: s.totalAudioEnergy, concealedSamples: s.concealedSamples, codec: codecs[s.codecId] };
      }
    });
  }, 1000);
}

// Diagnostics only (run.mjs --experiment strip-audio-rtx; the app never edits SDP): drops RTX and
// its FID ssrc-group from audio m-lines, to tell whether they are what Chrome refuses in an offer.
function stripAudioRtx(desc) {
  const sections = desc.sdp.split(/\r\n(?=m=)/);
  const out = sections.map((sec) => {
    if (!sec.startsWith("m=audio")) return sec;
    const rtx = [...sec.matchAll(/a=rtpmap:(\d+) rtx\//g)].map((m) => m[1]);
    let lines = sec.split("\r\n").filter((l) => !l.startsWith("a=ssrc-group:FID"));
    const fid = (desc.sdp.match(/a=ssrc-group:FID \d+ (\d+)/g) || []);
    for (const pt of rtx) lines = lines.filter((l) => !l.startsWith(`a=rtpmap:${pt} `) && !l.startsWith(`a=fmtp:${pt} `));
    lines[0] = lines[0].split(" ").filter((t, i) => i < 3 || !rtx.includes(t)).join(" ");
    const rtxSsrcs = fid.map((f) => f.split(" ")[2]);
    return lines.filter((l) => !rtxSsrcs.some((ss) => l.startsWith(`a=ssrc:${ss} `))).join("\r\n");
  });
  return { type: desc.type, sdp: out.join("\r\n") };
}

// Counts frames that reach the compositor (requestVideoFrameCallback), as a viewer would see them.
function showVideo(stream) {
  const v = document.getElementById("remote");
  v.srcObject = stream;
  v.play().catch((e) => state.errors.push("play: " + e));
  const tick = (_now, meta) => {
    state.frames++;
    state.presentedFrames = meta.presentedFrames;
    state.videoSize = [meta.width, meta.height];
    v.requestVideoFrameCallback(tick);
  };
  v.requestVideoFrameCallback(tick);
}

// Audio level through WebAudio. Chrome only pulls remote WebRTC audio into WebAudio while the
// stream also plays in a media element, so it is attached to a (muted) <audio> as well.
function listen(stream) {
  const a = document.getElementById("remote-audio");
  a.srcObject = stream;
  a.play().catch(() => {});
  const ctx = new AudioContext();
  ctx.resume();
  const an = ctx.createAnalyser();
  an.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(an);
  const buf = new Float32Array(an.fftSize);
  setInterval(() => {
    an.getFloatTimeDomainData(buf);
    let peak = 0;
    for (const x of buf) peak = Math.max(peak, Math.abs(x));
    state.analyserPeak = Math.max(state.analyserPeak, peak);
  }, 100);
}

// ---------------------------------------------------------------- broadcaster (Broadcast.tsx)
// "camera": an animated canvas; "microphone": an oscillator. With screen=inactive the offer also
// carries the two screen-share transceivers the app adds (screen sound, screen capture): one
// inactive, one sendonly with no track yet, as after the app stops sharing its screen.
function localMedia() {
  const canvas = document.getElementById("camera");
  const g = canvas.getContext("2d");
  let n = 0;
  setInterval(() => {
    n++;
    g.fillStyle = `hsl(${(n * 7) % 360} 80% 50%)`;
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = "#fff";
    g.fillRect((n * 8) % canvas.width, 200, 80, 80);
    g.font = "48px sans-serif";
    g.fillText(String(n), 20, 60);
  }, 33);
  const cam = canvas.captureStream(30).getVideoTracks()[0];
  const ctx = new AudioContext();
  ctx.resume();
  const osc = ctx.createOscillator();
  osc.frequency.value = 440;
  const gain = ctx.createGain();
  gain.gain.value = 0.5;
  const dest = ctx.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  const mic = dest.stream.getAudioTracks()[0];
  return { mic, cam, common: new MediaStream([mic, cam]) };
}

function broadcaster() {
  const { mic, cam, common } = localMedia();
  const conns = {};
  const served = state.served;

  socket.on("connect", async () => socket.emit("broadcast", myId, { streamId, auth: await auth("broadcast") }));
  socket.on("error", ({ message } = {}) => state.errors.push("error: " + message));

  socket.on("watch", (watcherId, msg) => {
    if (!msg || msg.streamId !== streamId) return;
    log("watch from " + watcherId);
    if (conns[watcherId]) conns[watcherId].close();
    const pc = (conns[watcherId] = new RTCPeerConnection(rtcConfig));
    const info = (served[watcherId] = { pcState: "new", offers: 0, answered: false });
    pc.addTransceiver(mic, { direction: "sendonly", streams: [common] });
    pc.addTransceiver(cam, { direction: "sendonly", streams: [common] });
    if (screen === "inactive") {
      pc.addTransceiver("audio", { direction: "inactive", streams: [common] });
      pc.addTransceiver("video", { direction: "sendonly", streams: [common] });
    }
    pc.onicecandidate = (ev) => {
      if (!ev.candidate) return;
      socket.emit("candidate", watcherId, candidatePayload(ev.candidate));
    };
    pc.onconnectionstatechange = () => { info.pcState = pc.connectionState; log(`pc ${watcherId} ${pc.connectionState}`); };
    pc.onnegotiationneeded = async () => {
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        info.offers++;
        state.localSdp = pc.localDescription.sdp;
        socket.emit("offer", myId, {
          description: { type: pc.localDescription.type, sdp: pc.localDescription.sdp },
          userId: watcherId, streamId: msg.streamId, mediaSequence: ["microphone", "camera"],
        });
      } catch (e) {
        state.errors.push("offer: " + e);
      }
    };
  });

  socket.on("candidate", (from, msg) => {
    if (!msg || !msg.candidate || !msg.candidate.candidate || !conns[from]) return;
    conns[from].addIceCandidate(msg.candidate).catch((e) => state.errors.push("addIceCandidate: " + e));
  });

  socket.on("answer", (_b, msg) => {
    const who = msg && (msg.userId || msg.watcherId);
    const pc = conns[who];
    if (!pc) return;
    state.remoteSdp = msg.description.sdp;
    pc.setRemoteDescription(msg.description)
      .then(() => { served[who].answered = true; })
      .catch((e) => state.errors.push("answer rejected: " + e));
  });

  socket.on("stopWatching", (id) => {
    log("stopWatching " + id);
    if (served[id]) served[id].left = true;
    conns[id]?.close();
    delete conns[id];
  });

  setInterval(async () => {
    for (const [id, pc] of Object.entries(conns)) {
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type !== "outbound-rtp") return;
        if (s.kind === "video" && s.framesEncoded) served[id].framesEncoded = s.framesEncoded;
        if (s.kind === "audio" && s.packetsSent) served[id].audioPackets = s.packetsSent;
      });
    }
  }, 1000);

  window.p2pStop = () => socket.emit("stopBroadcasting", myId, { streamId });
}

if (role === "watch") watcher();
else if (role === "broadcast") broadcaster();
else state.errors.push("unknown role " + role);
