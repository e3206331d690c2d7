// sails: the Sails (sails-rs 0.10) message framing on top of SCALE.
// A call, a reply and an event all start with SCALE(String service) ++ SCALE(String name).
// Pure: no I/O.
#pragma once
#include <string>
#include <string_view>

#include "scale/codec.hpp"

namespace p2p::sails {

// SCALE(service) ++ SCALE(method): the prefix of every call, non-unit reply and event.
Bytes route(std::string_view service, std::string_view method);

struct Header {
  std::string service;
  std::string method;   // or the event name
  std::size_t args_offset = 0;  // where the SCALE arguments start in the payload
};

// Reads the two leading strings; throws scale::DecodeError if they are not there.
Header read_header(ByteView payload);

// A unit-returning method's reply: the auto-reply (empty) or, from older builds,
// exactly the prefix. Anything else is an unexpected reply.
bool is_unit_reply(ByteView payload, std::string_view service, std::string_view method);

// The text of a userspace panic reply: raw UTF-8 "panicked with '<msg>'" optionally
// followed by " at '<loc>'". Returns <msg>; a payload in another form is returned
// as it is (lossily made printable), so the user still sees the node's words.
std::string panic_message(ByteView error_payload);

// The payload a panic produces, for the program model and the stand-in node.
Bytes panic_payload(std::string_view message);

}  // namespace p2p::sails
