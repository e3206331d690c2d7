// gear_rpc/block_events: reading a block's System.Events (already decoded by lib/metadata) for what a
// sent message did: its id, the extrinsic's failure or fee, the program's reply and Sails events. Pure.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metadata/metadata.hpp"
#include "util/bytes.hpp"

namespace p2p::gear_rpc {

// Gear.MessageQueued under ApplyExtrinsic(index) from source to destination: the message id.
std::optional<Hash32> queued_message(const std::vector<metadata::EventRecord>& events, std::uint32_t index,
                                     const Hash32& source, const Hash32& destination);

// System.ExtrinsicFailed under ApplyExtrinsic(index): a readable reason ("Gear.InsufficientBalance", or
// the dispatch error as JSON when it names no pallet error); nullopt when the extrinsic did not fail.
std::optional<std::string> extrinsic_failure(const metadata::Metadata& md,
                                             const std::vector<metadata::EventRecord>& events, std::uint32_t index);

// TransactionPayment.TransactionFeePaid's actual_fee under ApplyExtrinsic(index), as decimal text.
std::optional<std::string> fee_paid(const std::vector<metadata::EventRecord>& events, std::uint32_t index);

struct FoundReply {
  Bytes payload;
  bool ok = true;
  std::string panic;           // when !ok: sails::panic_message(payload), or the reply code if empty
  std::vector<Bytes> events;   // the program's Sails events attributed to this message
};

// Gear.UserMessageSent whose details.to is message_id. The Sails events are the program's messages to
// ActorId zero in the same block: all of them when the block queued only this message for the program,
// else the run that precedes the reply (a program's events are sent before its reply).
std::optional<FoundReply> find_reply(const std::vector<metadata::EventRecord>& events, const Hash32& message_id,
                                     const Hash32& program);

// Every Sails event (UserMessageSent from program to ActorId zero) in the block, in order.
std::vector<Bytes> program_events(const std::vector<metadata::EventRecord>& events, const Hash32& program);

}  // namespace p2p::gear_rpc
