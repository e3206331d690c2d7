// Test oracle for lib/gear_rpc/extrinsic: decodes signed extrinsics that the C++ code built, with
// @polkadot/types and the real Vara metadata, checks every field against what the test meant to build, and
// verifies the signature with @polkadot/util-crypto over the signing payload polkadot-js builds itself
// (ExtrinsicPayload from the same genesis, spec, tx version and block hash). It also encodes mortal eras.
// Usage: node check_extrinsic.mjs path/to/vara_runtime.scale input.json
// input:  {cases: [{hex, signer, genesis, blockHash, specVersion, txVersion, era: null | {period, current},
//                   nonce, tip, dest, payload, gasLimit, value, keepAlive}], eras: [{period, current}]}
// output: {cases: [{errors: [...], signingPayloadLength}], eras: ["0x.."]}
import { readFileSync } from 'node:fs';

// polkadot-js warns about Vara's custom StakingBlackList extension; that is expected, keep stderr quiet.
const warn = console.warn;
console.warn = (...args) => { if (!String(args.join(' ')).includes('Unknown signed extensions')) warn(...args); };

const { TypeRegistry, Metadata } = await import('@polkadot/types');
const { u8aToHex } = await import('@polkadot/util');
const { blake2AsU8a, ed25519Verify, cryptoWaitReady } = await import('@polkadot/util-crypto');

await cryptoWaitReady();
const [metaPath, inputPath] = process.argv.slice(2);
const registry = new TypeRegistry();
const metadata = new Metadata(registry, new Uint8Array(readFileSync(metaPath)));
registry.setMetadata(metadata);
const input = JSON.parse(readFileSync(inputPath, 'utf8'));

function checkCase(c) {
  const errors = [];
  const expect = (cond, what) => { if (!cond) errors.push(what); };
  const ext = registry.createType('Extrinsic', c.hex);
  expect(ext.isSigned, 'not signed');
  expect((ext.version & 0x7f) === 4, `version ${ext.version}`);
  expect(ext.toHex() === c.hex, 're-encoding differs from the input');
  expect(ext.hash.toHex() === c.hash, `hash ${ext.hash.toHex()} != ${c.hash}`);
  // The address is the metadata's MultiAddress enum; its Id variant carries the AccountId32.
  expect(ext.signer.type === 'Id' && ext.signer.value.toHex() === c.signer, `signer ${ext.signer.toHex()}`);
  const multi = ext.inner.signature.multiSignature;
  expect(multi.isEd25519, `signature type ${multi.type}`);

  const m = ext.method;
  expect(m.section === 'gear' && m.method === 'sendMessage', `call ${m.section}.${m.method}`);
  const [dest, payload, gasLimit, value, keepAlive] = m.args;
  expect(dest.toHex() === c.dest, `destination ${dest.toHex()}`);
  expect(payload.toHex() === c.payload, 'payload differs');
  expect(gasLimit.toString() === c.gasLimit, `gas_limit ${gasLimit.toString()}`);
  expect(value.toString() === c.value, `value ${value.toString()}`);
  expect(keepAlive.isTrue === c.keepAlive, `keep_alive ${keepAlive.toString()}`);

  if (c.era === null) {
    expect(ext.era.isImmortalEra, 'era is not immortal');
  } else {
    expect(ext.era.isMortalEra, 'era is not mortal');
    if (ext.era.isMortalEra) {
      const mortal = ext.era.asMortalEra;
      const want = registry.createType('ExtrinsicEra', { current: c.era.current, period: c.era.period }).asMortalEra;
      expect(mortal.period.toNumber() === want.period.toNumber(), `era period ${mortal.period.toNumber()}`);
      expect(mortal.phase.toNumber() === want.phase.toNumber(), `era phase ${mortal.phase.toNumber()}`);
      expect(mortal.birth(c.era.current) === want.birth(c.era.current), 'era birth differs');
    }
  }
  expect(ext.nonce.toNumber() === c.nonce, `nonce ${ext.nonce.toNumber()}`);
  expect(ext.tip.toString() === c.tip, `tip ${ext.tip.toString()}`);
  const mode = ext.inner.signature.mode;
  expect(mode !== undefined && mode.toNumber() === 0, `mode ${mode?.toString()}`);

  // The payload polkadot-js would sign, from the transaction's fields and the chain context only.
  const signingPayload = registry.createType('ExtrinsicPayload', {
    method: m.toHex(), era: ext.era, nonce: ext.nonce, tip: ext.tip, mode: 0,
    specVersion: c.specVersion, transactionVersion: c.txVersion,
    genesisHash: c.genesis, blockHash: c.blockHash,
  }, { version: 4 });
  const u8a = signingPayload.toU8a({ method: true });
  const message = u8a.length > 256 ? blake2AsU8a(u8a, 256) : u8a;
  const ok = ed25519Verify(message, multi.asEd25519.toU8a(), c.signer);
  expect(ok, 'the signature does not verify over the payload polkadot-js builds');
  return { errors, signingPayloadLength: u8a.length };
}

const cases = input.cases.map((c) => {
  try {
    return checkCase(c);
  } catch (e) {
    return { errors: [`polkadot-js could not decode it: ${e.message}`], signingPayloadLength: 0 };
  }
});
const eras = (input.eras ?? []).map((e) => u8aToHex(registry.createType('ExtrinsicEra', e).toU8a()));
process.stdout.write(JSON.stringify({ cases, eras }) + '\n');
