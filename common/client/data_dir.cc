#include "common/client/data_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crypto/key_file.h"
#include "common/crypto/secret.h"
#include "google/protobuf/text_format.h"

namespace tether::client {

absl::Status EnsurePrivateDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("no data directory given");
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data directory ", dir, " is open to other users; it holds private keys: chmod 700 ", dir));
  }
  return absl::OkStatus();
}

absl::Status ReadTextProto(const std::string& path, google::protobuf::Message* message) {
  absl::StatusOr<crypto::SecretBytes> text = crypto::ReadSecretFile(path);
  if (!text.ok()) return text.status();
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text->view()), message)) {
    return absl::DataLossError(absl::StrCat(path, " does not parse"));
  }
  return absl::OkStatus();
}

absl::Status WriteTextProto(const std::string& path, const google::protobuf::Message& message) {
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(message, &text)) {
    return absl::InternalError(absl::StrCat("cannot print ", message.GetTypeName()));
  }
  return crypto::WriteSecretFile(path, crypto::SecretBytes(text), /*overwrite=*/true);
}

}  // namespace tether::client
