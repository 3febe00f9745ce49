// Lower-case hex encoding of byte strings, and strict decoding of untrusted hex text.
#ifndef TETHER_COMMON_BASE_HEX_H_
#define TETHER_COMMON_BASE_HEX_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace tether {

std::string HexEncode(absl::string_view bytes);

// Decodes hex (either case, no separators). Odd length or a non-hex character is
// kInvalidArgument naming the offending position.
absl::StatusOr<std::string> HexDecode(absl::string_view hex);

}  // namespace tether

#endif  // TETHER_COMMON_BASE_HEX_H_
