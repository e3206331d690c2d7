// vara_metadata: the real Vara runtime metadata (data/vara_runtime.scale) compiled into the binary,
// so offline signing and `p2pstream devnode` need no data file at run time. The build generates
// the definition (embed.cmake).
#pragma once
#include "util/bytes.hpp"

namespace p2p::vara_metadata {

// The bytes of state_getMetadata: "meta" magic ++ version ++ RuntimeMetadata.
ByteView embedded();

}  // namespace p2p::vara_metadata
