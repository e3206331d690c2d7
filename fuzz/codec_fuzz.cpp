// fuzz/codec_fuzz: libFuzzer target for the pure codec layer (scale, sails, w3b/messages).
// Every decoder must either throw DecodeError or return a value that re-encodes to the exact input.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "sails/sails.hpp"
#include "scale/codec.hpp"
#include "w3b/messages.hpp"

namespace {

using namespace p2p;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "codec_fuzz: %s\n", what);
  std::abort();
}

// decode∘encode is the identity, because the decoder accepts canonical forms only.
template <class Decode, class Encode>
void round_trip(ByteView in, Decode decode, Encode encode, const char* what) {
  Bytes again;
  try {
    again = encode(decode(in));
  } catch (const scale::DecodeError&) {
    return;
  }
  if (!std::equal(in.begin(), in.end(), again.begin(), again.end())) fail(what);
}

void check_compact(ByteView in) {
  scale::Decoder d(in);
  scale::u128 v;
  try {
    v = d.compact128();
  } catch (const scale::DecodeError&) {
    return;
  }
  scale::Encoder e;
  e.compact128(v);
  if (!std::equal(e.out().begin(), e.out().end(), in.begin(), in.begin() + d.position()))
    fail("compact128 is not canonical");
}

void check_header(ByteView in) {
  sails::Header h;
  try {
    h = sails::read_header(in);
  } catch (const scale::DecodeError&) {
    return;
  }
  Bytes r = sails::route(h.service, h.method);
  if (h.args_offset > in.size() || !std::equal(r.begin(), r.end(), in.begin(), in.begin() + h.args_offset))
    fail("route(read_header(x)) is not the prefix of x");
}

// The panic text goes to a terminal: it must be non-empty, valid UTF-8 with no C0 control bytes.
void check_panic(ByteView in) {
  std::string text = sails::panic_message(in);
  if (text.empty()) fail("panic_message returned nothing");
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) fail("panic_message let a control byte through");
  scale::Encoder e;
  e.str(text);
  try {
    scale::Decoder(e.out()).str();
  } catch (const scale::DecodeError&) {
    fail("panic_message returned invalid UTF-8");
  }
}

Bytes encode_state_body(const w3b::ProgramState& s) {
  scale::Encoder e;
  w3b::encode_state(e, s);
  return std::move(e).take();
}

w3b::ProgramState decode_state_body(ByteView in) {
  scale::Decoder d(in);
  auto s = w3b::decode_state(d);
  d.expect_end();
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteView in(data, size);
  round_trip(in, w3b::decode_command, w3b::encode_command, "command round trip differs");
  round_trip(in, w3b::decode_query, w3b::encode_query, "query round trip differs");
  round_trip(in, w3b::decode_event, w3b::encode_event, "event round trip differs");
  round_trip(in, w3b::decode_state_reply, w3b::encode_state_reply, "state reply round trip differs");
  round_trip(in, decode_state_body, encode_state_body, "state body round trip differs");
  check_compact(in);
  check_header(in);
  check_panic(in);
  return 0;
}
