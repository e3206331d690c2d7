// Test oracle for lib/metadata: builds a System.Events value (Vec<EventRecord>) with @polkadot/types from the
// real Vara metadata and prints {hex, events}, where events are the expected decodings in the shapes
// lib/metadata/metadata.hpp documents. The C++ test decodes the hex with our decoder and compares.
// Usage: node encode_events.mjs [path/to/vara_runtime.scale]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { strict as assert } from 'node:assert';

// polkadot-js warns about Vara's custom StakingBlackList extension; that is expected, keep stderr quiet.
const warn = console.warn;
console.warn = (...args) => { if (!String(args.join(' ')).includes('Unknown signed extensions')) warn(...args); };

const { TypeRegistry, Metadata } = await import('@polkadot/types');
const { u8aConcat, u8aToHex } = await import('@polkadot/util');

const metaPath = process.argv[2] ??
  fileURLToPath(new URL('../../../shared/data/vara_runtime.scale', import.meta.url));
const registry = new TypeRegistry();
const metadata = new Metadata(registry, new Uint8Array(readFileSync(metaPath)));
registry.setMetadata(metadata);
const latest = metadata.asLatest;

const pallet = (name) => {
  const p = latest.pallets.find((x) => x.name.toString() === name);
  assert(p, `no pallet ${name}`);
  return p;
};

// The System.Events storage type: Vec<EventRecord>.
const eventsEntry = pallet('System').storage.unwrap().items.find((i) => i.name.toString() === 'Events');
const eventsType = registry.createLookupType(eventsEntry.type.asPlain);

// Encodes one pallet event through the pallet's own event enum (polkadot-js' GenericEvent cannot be built
// from an object), then prefixes the pallet index, which is what RuntimeEvent's encoding is.
function encodeEvent(palletName, eventName, fields) {
  const p = pallet(palletName);
  const enumType = registry.createLookupType(p.events.unwrap().type);
  const value = fields === null ? eventName : { [eventName]: fields };
  const inner = registry.createType(enumType, value);
  assert.equal(inner.type, eventName);
  const eventIndex = inner.index;
  return { bytes: u8aConcat([p.index.toNumber()], inner.toU8a()), palletIndex: p.index.toNumber(), eventIndex };
}

const h = (byte) => '0x' + byte.repeat(32);
const alice = '0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d';
const bob = '0x8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48';
const program = '0x' + '5c'.repeat(31) + '01';
const msgId = '0x' + [...Array(32).keys()].map((i) => (i * 7 + 3).toString(16).padStart(2, '0')).join('');
const replyId = h('ab');
const otherId = h('0c');

// [phase, pallet, event, fields (our shape), polkadot input for the fields if it differs, topics]
const cases = [
  [{ ApplyExtrinsic: 1 }, 'System', 'ExtrinsicSuccess',
    { dispatch_info: { weight: { ref_time: 123456789012, proof_size: 4096 }, class: 'Operational', pays_fee: 'No' } },
    undefined, []],
  [{ ApplyExtrinsic: 1 }, 'Balances', 'Transfer',
    { from: alice, to: bob, amount: '1000000000000000000000' }, undefined, [h('11')]],
  [{ ApplyExtrinsic: 2 }, 'Gear', 'MessageQueued',
    { id: msgId, source: alice, destination: program, entry: 'Handle' }, undefined, []],
  ['Finalization', 'Gear', 'UserMessageSent',
    { message: { id: replyId, source: program, destination: alice, payload: '0x3057334273747265616d696e67',
                 value: '0', details: { to: msgId, code: { Error: { Execution: 'UserspacePanic' } } } },
      expiration: null }, undefined, []],
  ['Finalization', 'Gear', 'UserMessageSent',
    { message: { id: otherId, source: program, destination: bob, payload: '0x',
                 value: '340282366920938463463374607431768211455', details: { to: replyId, code: { Success: 'Auto' } } },
      expiration: 4294967295 }, undefined, [h('22'), h('33')]],
  ['Initialization', 'Gear', 'MessagesDispatched',
    // A BTreeMap is a sorted Vec<(K, V)> on the wire: msgId (0x03..) sorts before otherId (0x0c..).
    { total: 2, statuses: [[msgId, 'Success'], [otherId, 'Failed']], state_changes: [program] },
    { total: 2, statuses: new Map([[otherId, 'Failed'], [msgId, 'Success']]), state_changes: [program] }, []],
  ['Initialization', 'System', 'CodeUpdated', null, undefined, []],
];

const records = [];
const expected = [];
for (const [phase, palletName, eventName, fields, input, topics] of cases) {
  const ev = encodeEvent(palletName, eventName, input ?? fields);
  records.push({ phase, event: ev.bytes, topics });
  expected.push({ phase, pallet: palletName, name: eventName, pallet_index: ev.palletIndex,
                  event_index: ev.eventIndex, fields, topics });
}

const encoded = registry.createType(eventsType, records);

// Self-check: polkadot-js reads back what it wrote, so a wrong input shape cannot slip through silently.
const back = registry.createType(eventsType, encoded.toU8a());
assert.equal(back.length, cases.length);
back.forEach((rec, i) => {
  assert.equal(rec.event.method, cases[i][2]);
  assert.equal(rec.event.section.toLowerCase(), cases[i][1].toLowerCase());
});
assert.equal(back[1].event.data[2].toString(), '1000000000000000000000');
assert.equal(back[4].event.data[0].value.toString(), '340282366920938463463374607431768211455');

process.stdout.write(JSON.stringify({ hex: u8aToHex(encoded.toU8a()), events: expected }) + '\n');
