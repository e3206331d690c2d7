// Tests for gear_rpc/rpc's pure parts (endpoint names, request text, answer parsing) and the pieces of
// gear_transport that read node answers (panic text from RPC errors, block numbers).
#include "gear_rpc/rpc.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gear_rpc/gear_transport.hpp"

namespace p2p::gear_rpc {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

TEST(GearRpcClient, EndpointNames) {
  EXPECT_EQ(endpoint_url("mainnet"), "wss://rpc.vara.network");
  EXPECT_EQ(endpoint_url("testnet"), "wss://testnet.vara.network");
  EXPECT_EQ(endpoint_url("local"), "ws://127.0.0.1:9944");
  EXPECT_EQ(endpoint_url("http://127.0.0.1:9933"), "http://127.0.0.1:9933");
  for (const char* bad : {"ledger", "", "ws://", "ftp://x", "127.0.0.1:9944"})
    EXPECT_THROW(endpoint_url(bad), UsageError) << bad;
}

TEST(GearRpcClient, RequestBody) {
  json j = json::parse(request_body(7, "chain_getBlockHash", json::array({0})));
  EXPECT_EQ(j, (json{{"jsonrpc", "2.0"}, {"id", 7}, {"method", "chain_getBlockHash"}, {"params", {0}}}));
}

TEST(GearRpcClient, ParseAnswerResult) {
  EXPECT_EQ(parse_answer("u", "m", 3, R"({"jsonrpc":"2.0","id":3,"result":{"a":1}})"), (json{{"a", 1}}));
  EXPECT_TRUE(parse_answer("u", "m", 3, R"({"jsonrpc":"2.0","id":3,"result":null})").is_null());
}

TEST(GearRpcClient, ParseAnswerError) {
  try {
    parse_answer("http://n", "gear_calculateHandleGas", 1,
                 R"({"jsonrpc":"2.0","id":1,"error":{"code":8000,"message":"Runtime error","data":"boom"}})");
    FAIL() << "no RpcError";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.rpc_code(), 8000);
    EXPECT_EQ(e.rpc_message(), "Runtime error");
    EXPECT_EQ(e.data(), "boom");
    EXPECT_EQ(e.details(), "Runtime error: boom");
    EXPECT_THAT(e.what(), HasSubstr("http://n refused gear_calculateHandleGas: Runtime error (JSON-RPC error 8000): boom"));
  }
  // An error about the request itself may come with a null id.
  EXPECT_THROW(parse_answer("u", "m", 1, R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})"),
               RpcError);
}

TEST(GearRpcClient, ParseAnswerMalformed) {
  for (const char* body : {"", "garbage", "[1,2]", R"({"jsonrpc":"2.0","id":1})", R"({"jsonrpc":"2.0","id":2,"result":1})",
                           R"({"jsonrpc":"2.0","result":1})", R"({"id":1,"error":{"message":"no code"}})",
                           R"({"id":1,"error":"text"})", "{\"id\":1,\"result\":\"\xff"})
    EXPECT_THAT([&] { parse_answer("http://n", "state_getMetadata", 1, body); },
                ::testing::ThrowsMessage<RuntimeError>(HasSubstr("malformed answer from http://n to state_getMetadata")))
        << body;
}

RpcError rpc_error(std::int64_t code, std::string message, json data) {
  return RpcError("u", "gear_calculateHandleGas", code, std::move(message), std::move(data));
}

TEST(GearRpcClient, PanicFromRpcError) {
  // Gear formats the runtime's reason with Rust's Debug, so it arrives quoted inside the data.
  auto e = rpc_error(8000, "Runtime error", "\"Program terminated with a trap: panicked with 'Account is no registered'\"");
  EXPECT_EQ(panic_from_rpc_error(e), "Account is no registered");
  // Today's Gear (and the devnode) nest the panic in two wrappers, each with its own closing quote.
  auto nested = rpc_error(8000, "Runtime error",
                          "\"Program terminated with a trap: 'Panic occurred: panicked with 'You are not broadcaster''\"");
  EXPECT_EQ(panic_from_rpc_error(nested), "You are not broadcaster");
  auto quotes = rpc_error(8000, "Runtime error", "\"Program terminated with a trap: 'panicked with 'it\\'s \\\"x\\\"''\"");
  EXPECT_EQ(panic_from_rpc_error(quotes), "it's \"x\"");
  auto located = rpc_error(8000, "Runtime error", "panicked with 'Id is not exist' at 'src/lib.rs:10:5'");
  EXPECT_EQ(panic_from_rpc_error(located), "Id is not exist");
  // Code 8000 without a panic is still the runtime refusing the message: its text is the reason.
  EXPECT_EQ(panic_from_rpc_error(rpc_error(8000, "Runtime error", "Program not found")), "Runtime error: Program not found");
  // Any other error is not the program's refusal, unless it quotes a panic.
  EXPECT_EQ(panic_from_rpc_error(rpc_error(-32602, "Invalid params", nullptr)), std::nullopt);
  EXPECT_EQ(panic_from_rpc_error(rpc_error(1, "panicked with 'x'", nullptr)), "x");
}

TEST(GearRpcClient, BlockNumbers) {
  EXPECT_EQ(parse_block_number("0x1a", "h"), 26u);
  EXPECT_EQ(parse_block_number("0x0", "h"), 0u);
  EXPECT_EQ(parse_block_number(json(42), "h"), 42u);
  EXPECT_EQ(parse_block_number("0xffffffffffffffff", "h"), UINT64_MAX);
  for (json bad : {json("26"), json("0x"), json("0xg1"), json("0x10000000000000000"), json(-1), json(nullptr)})
    EXPECT_THROW(parse_block_number(bad, "h"), RuntimeError) << bad.dump();
}

TEST(GearRpcClient, UnreachableHttpNamesTheUrl) {
  // Port 1 on localhost: connection refused at once, no network needed.
  auto c = make_http_client("http://127.0.0.1:1");
  EXPECT_THAT([&] { c->call("chain_getHeader", json::array()); },
              ::testing::ThrowsMessage<UnreachableError>(HasSubstr("cannot reach http://127.0.0.1:1")));
}

TEST(GearRpcClient, UnreachableWebSocketNamesTheUrl) {
  EXPECT_THAT([] { make_ws_client("ws://127.0.0.1:1"); },
              ::testing::ThrowsMessage<UnreachableError>(HasSubstr("cannot reach ws://127.0.0.1:1")));
}

}  // namespace
}  // namespace p2p::gear_rpc
