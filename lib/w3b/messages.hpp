// w3b/messages: byte-exact Sails payloads of every W3Bstreaming call, query,
// reply and event (what sails-js and the deployed program send). Pure: no I/O.
#pragma once
#include <string>
#include <string_view>

#include "scale/codec.hpp"
#include "w3b/types.hpp"

namespace p2p::w3b {

// The IDL method name of a command ("NewStream", ...), and of an event.
std::string_view method_name(const Command& c);
std::string_view event_name(const Event& e);

Bytes encode_command(const Command& c);
// Throws scale::DecodeError on a wrong service, an unknown method, bad or trailing bytes.
Command decode_command(ByteView payload);

Bytes encode_query(const Query& q);
Query decode_query(ByteView payload);

// Sails event payload: route ++ SCALE(name) ++ fields (no enum index byte).
Bytes encode_event(const Event& e);
Event decode_event(ByteView payload);

// GetState reply: route("W3Bstreaming","GetState") ++ SCALE(ProgramState).
Bytes encode_state_reply(const ProgramState& s);
ProgramState decode_state_reply(ByteView payload);

// The SCALE body alone, for round-trip tests and the ledger's storage.
void encode_state(scale::Encoder& e, const ProgramState& s);
ProgramState decode_state(scale::Decoder& d);

// True when payload is an acceptable reply to a unit-returning command
// (empty auto-reply, or the bare prefix from older builds).
bool is_unit_reply(const Command& c, ByteView payload);

}  // namespace p2p::w3b
