// gear_rpc/block_events: matching a sent message to its events. Event fields arrive in the shapes
// lib/metadata documents (hex strings for ids and payloads, objects for named fields).
#include "gear_rpc/block_events.hpp"

#include <fmt/format.h>

#include "sails/sails.hpp"

namespace p2p::gear_rpc {

using metadata::EventRecord;
using metadata::Value;

namespace {

const Hash32 kZero{};

bool is(const EventRecord& e, std::string_view pallet, std::string_view name) {
  return e.pallet == pallet && e.name == name;
}

bool in_extrinsic(const EventRecord& e, std::uint32_t index) {
  return e.phase.is_object() && e.phase.contains("ApplyExtrinsic") && e.phase["ApplyExtrinsic"].is_number_unsigned() &&
         e.phase["ApplyExtrinsic"].get<std::uint64_t>() == index;
}

// A hex field equal to the given 32 bytes (absent or malformed fields never match).
bool same(const Value& fields, std::string_view key, const Hash32& want) {
  if (!fields.is_object()) return false;
  auto it = fields.find(std::string(key));
  if (it == fields.end() || !it->is_string()) return false;
  auto h = hash32_from_hex(it->get<std::string>());
  return h && *h == want;
}

// The `message` of a Gear.UserMessageSent, or null.
const Value* user_message(const EventRecord& e) {
  if (!is(e, "Gear", "UserMessageSent") || !e.fields.is_object()) return nullptr;
  auto it = e.fields.find("message");
  return it != e.fields.end() && it->is_object() ? &*it : nullptr;
}

bool is_program_event(const Value& msg, const Hash32& program) {
  return same(msg, "source", program) && same(msg, "destination", kZero) && msg.value("details", Value()).is_null();
}

Bytes payload_of(const Value& msg) {
  auto it = msg.find("payload");
  if (it == msg.end() || !it->is_string()) return {};
  return from_hex(it->get<std::string>()).value_or(Bytes{});
}

// {"Error": {"Execution": "RanOutOfGas"}} -> "Error::Execution::RanOutOfGas".
std::string flatten(const Value& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.size() == 1) return v.begin().key() + "::" + flatten(v.begin().value());
  return v.dump(-1, ' ', false, Value::error_handler_t::replace);
}

// True when the block queued exactly one message for the program, and it is this one.
bool only_message_to(const std::vector<EventRecord>& events, const Hash32& program, const Hash32& message_id) {
  std::size_t n = 0, ours = 0;
  for (const auto& e : events)
    if (is(e, "Gear", "MessageQueued") && same(e.fields, "destination", program)) {
      ++n;
      ours += same(e.fields, "id", message_id);
    }
  return n == 1 && ours == 1;
}

// The program's events just before the reply at `at`: stop at another reply, a newly queued message, or
// a change of phase.
std::vector<Bytes> run_before(const std::vector<EventRecord>& events, std::size_t at, const Hash32& program) {
  std::vector<Bytes> run;
  for (std::size_t j = at; j-- > 0;) {
    const EventRecord& e = events[j];
    if (e.phase != events[at].phase || is(e, "Gear", "MessageQueued")) break;
    const Value* msg = user_message(e);
    if (!msg) continue;
    if (!msg->value("details", Value()).is_null()) break;
    if (is_program_event(*msg, program)) run.insert(run.begin(), payload_of(*msg));
  }
  return run;
}

}  // namespace

std::optional<Hash32> queued_message(const std::vector<EventRecord>& events, std::uint32_t index, const Hash32& source,
                                     const Hash32& destination) {
  for (const auto& e : events)
    if (is(e, "Gear", "MessageQueued") && in_extrinsic(e, index) && same(e.fields, "source", source) &&
        same(e.fields, "destination", destination))
      return hash32_from_hex(e.fields["id"].get<std::string>());
  return std::nullopt;
}

std::optional<std::string> extrinsic_failure(const metadata::Metadata& md, const std::vector<EventRecord>& events,
                                             std::uint32_t index) {
  for (const auto& e : events) {
    if (!is(e, "System", "ExtrinsicFailed") || !in_extrinsic(e, index)) continue;
    Value err = e.fields.is_object() ? e.fields.value("dispatch_error", Value()) : Value();
    // Module errors name a pallet and the first byte of its error enum.
    if (err.is_object() && err.contains("Module") && err["Module"].is_object()) {
      const Value& m = err["Module"];
      auto bytes = m.value("error", Value()).is_string() ? from_hex(m["error"].get<std::string>()) : std::nullopt;
      if (m.value("index", Value()).is_number_unsigned() && bytes && !bytes->empty()) {
        const auto* p = md.find_pallet_by_index(static_cast<std::uint8_t>(m["index"].get<std::uint64_t>()));
        const auto* en = p && p->errors ? md.type(*p->errors).as<metadata::Enum>() : nullptr;
        if (en)
          for (const auto& v : en->variants)
            if (v.index == (*bytes)[0]) return p->name + "." + v.name;
      }
    }
    return flatten(err);
  }
  return std::nullopt;
}

std::optional<std::string> fee_paid(const std::vector<EventRecord>& events, std::uint32_t index) {
  for (const auto& e : events) {
    if (!is(e, "TransactionPayment", "TransactionFeePaid") || !in_extrinsic(e, index) || !e.fields.is_object())
      continue;
    const Value& fee = e.fields.value("actual_fee", Value());
    if (fee.is_string()) return fee.get<std::string>();
    if (fee.is_number_unsigned()) return std::to_string(fee.get<std::uint64_t>());
  }
  return std::nullopt;
}

std::optional<FoundReply> find_reply(const std::vector<EventRecord>& events, const Hash32& message_id,
                                     const Hash32& program) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    const Value* msg = user_message(events[i]);
    if (!msg) continue;
    const Value details = msg->value("details", Value());
    if (!same(details, "to", message_id)) continue;
    FoundReply r;
    r.payload = payload_of(*msg);
    const Value code = details.value("code", Value());
    r.ok = !(code.is_object() && code.contains("Error"));
    if (!r.ok) {
      r.panic = r.payload.empty() ? "the message failed: " + flatten(code) : sails::panic_message(r.payload);
      return r;  // a failed execution sends nothing else
    }
    r.events = only_message_to(events, program, message_id) ? program_events(events, program)
                                                             : run_before(events, i, program);
    return r;
  }
  return std::nullopt;
}

std::vector<Bytes> program_events(const std::vector<EventRecord>& events, const Hash32& program) {
  std::vector<Bytes> out;
  for (const auto& e : events)
    if (const Value* msg = user_message(e); msg && is_program_event(*msg, program)) out.push_back(payload_of(*msg));
  return out;
}

}  // namespace p2p::gear_rpc
