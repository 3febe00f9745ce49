// A service's private data directory (agent, gateway): created 0700, refused when others can read
// it, and small text-format protobuf files in it written 0600.
#ifndef TETHER_COMMON_CLIENT_DATA_DIR_H_
#define TETHER_COMMON_CLIENT_DATA_DIR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace tether::client {

// Creates `dir` (mode 0700) if missing. kFailedPrecondition if it is not a directory or has any
// group/other permission bits (it holds private keys).
absl::Status EnsurePrivateDir(const std::string& dir);

// Reads a text-format message written by WriteTextProto. kNotFound if the file is missing;
// kPermissionDenied if others can read it; kDataLoss if it does not parse.
absl::Status ReadTextProto(const std::string& path, google::protobuf::Message* message);

// Writes `message` in text format, atomically, mode 0600 (replacing any existing file).
absl::Status WriteTextProto(const std::string& path, const google::protobuf::Message& message);

}  // namespace tether::client

#endif  // TETHER_COMMON_CLIENT_DATA_DIR_H_
