// utf8.hpp — is a byte string valid UTF-8 (PROTOCOL.md §4: every wire string is UTF-8)?
// Owns: the one UTF-8 check of the C++ side, so that every reader refuses the same strings as
// the Python and TypeScript SDKs do (their decoders are strict: no overlongs, no surrogates,
// nothing above U+10FFFF).
// Must never: allocate or throw.
#pragma once

#include <string_view>

namespace muster {

bool valid_utf8(std::string_view s);

}  // namespace muster
