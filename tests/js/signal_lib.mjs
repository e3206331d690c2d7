// Helpers shared by the signalling test scripts: argument parsing, ed25519 keys from known seeds,
// challenge signing, and socket.io-client sockets that record every event so a test can wait
// for one ("next") or assert that none came ("none").
import { io } from "socket.io-client";
import { cryptoWaitReady, ed25519PairFromSeed, ed25519Sign, encodeAddress } from "@polkadot/util-crypto";
import { hexToU8a, stringToU8a, u8aToHex } from "@polkadot/util";

export function args() {
  const out = {};
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith("--")) throw new Error(`unexpected argument ${a[i]}`);
    out[a[i].slice(2)] = a[i + 1];
    i++;
  }
  return out;
}

export async function ready() {
  await cryptoWaitReady();
}

export function account(seedHex) {
  const pair = ed25519PairFromSeed(hexToU8a(seedHex));
  return { pair, id: u8aToHex(pair.publicKey), address: encodeAddress(pair.publicKey, 137) };
}

export function signChallenge(acc, role, streamId, nonce) {
  const text = `p2pstream-signal:v1:${role}:${streamId}:${nonce}`;
  return { publicKey: acc.id, signature: u8aToHex(ed25519Sign(stringToU8a(text), acc.pair)) };
}

// The web app's legacy signedMsg: polkadot{.js} signRaw wraps the data in <Bytes></Bytes>.
export function legacySignature(acc, wrapped = true) {
  const text = wrapped ? `<Bytes>${acc.address}</Bytes>` : acc.address;
  return u8aToHex(ed25519Sign(stringToU8a(text), acc.pair));
}

let failures = 0;
export function check(cond, what, detail = "") {
  if (cond) {
    console.log(`ok - ${what}`);
  } else {
    failures++;
    console.log(`not ok - ${what}${detail ? ": " + detail : ""}`);
  }
  return cond;
}
export function deepEqual(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
export function checkEqual(actual, expected, what) {
  return check(deepEqual(actual, expected), what, `got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}
export function finish() {
  console.log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}

// A socket.io-client socket that keeps every event it receives.
export class Peer {
  constructor(url, name, opts = {}) {
    this.name = name;
    this.events = [];  // [name, ...args]
    this.waiters = [];
    this.socket = io(url, { reconnection: false, forceNew: true, timeout: 5000, ...opts });
    this.unused = null;  // the newest challenge nonce not yet signed
    this.socket.onAny((event, ...rest) => {
      if (event === "challenge" && rest[0]) this.unused = rest[0].nonce;
      this.events.push([event, ...rest]);
      this.wake();
    });
    this.socket.on("disconnect", (reason) => {
      this.events.push(["__disconnect", reason]);
      this.wake();
    });
    this.socket.on("connect_error", (err) => {
      this.events.push(["__connect_error", String(err && err.message)]);
      this.wake();
    });
  }
  wake() {
    for (const w of [...this.waiters]) w();
  }
  // The first not yet consumed event called `event` that satisfies pred; consumed on return.
  next(event, pred = () => true, ms = 4000) {
    return new Promise((resolve, reject) => {
      const look = () => {
        const i = this.events.findIndex((e) => e[0] === event && pred(e.slice(1)));
        if (i < 0) return false;
        const [e] = this.events.splice(i, 1);
        this.waiters = this.waiters.filter((w) => w !== look);
        clearTimeout(timer);
        resolve(e.slice(1));
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== look);
        reject(new Error(`${this.name}: no '${event}' within ${ms} ms; saw ${JSON.stringify(this.events).slice(0, 600)}`));
      }, ms);
      if (!look()) this.waiters.push(look);
    });
  }
  // Resolves true when no matching event arrives within ms.
  async none(event, pred = () => true, ms = 300) {
    try {
      await this.next(event, pred, ms);
      return false;
    } catch {
      return true;
    }
  }
  // The newest unsigned challenge nonce, waiting for the server's next one if all are spent.
  challenge(ms = 4000) {
    return new Promise((resolve, reject) => {
      const look = () => {
        if (!this.unused) return false;
        const n = this.unused;
        this.unused = null;
        this.waiters = this.waiters.filter((w) => w !== look);
        clearTimeout(timer);
        resolve(n);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== look);
        reject(new Error(`${this.name}: no unused challenge within ${ms} ms`));
      }, ms);
      if (!look()) this.waiters.push(look);
    });
  }
  drop(event) {
    this.events = this.events.filter((e) => e[0] !== event);
  }
  emit(...a) {
    this.socket.emit(...a);
  }
  close() {
    this.socket.disconnect();
  }
}

// Every check that throws counts as one failure, with its message.
export async function step(what, fn) {
  try {
    await fn();
  } catch (e) {
    check(false, what, e && e.message ? e.message : String(e));
  }
}

export async function httpText(url) {
  const r = await fetch(url);
  return { status: r.status, text: await r.text(), type: r.headers.get("content-type") };
}

export function metricValue(text, name) {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}
