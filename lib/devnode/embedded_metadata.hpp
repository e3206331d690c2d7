// devnode/embedded_metadata: the Vara runtime metadata (data/vara_runtime.scale) compiled into the binary,
// so `p2pstream devnode` needs no data file at run time. The build generates the definition (embed.cmake).
#pragma once
#include "util/bytes.hpp"

namespace p2p::devnode {

// The bytes of state_getMetadata: "meta" magic ++ version ++ RuntimeMetadata.
ByteView embedded_metadata();

}  // namespace p2p::devnode
