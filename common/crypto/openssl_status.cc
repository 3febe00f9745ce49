#include "common/crypto/openssl_status.h"

#include <openssl/err.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace tether::crypto {

absl::Status OpenSslError(absl::StatusCode code, absl::string_view what) {
  unsigned long err = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  std::string detail = "no OpenSSL error detail";
  if (err != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    detail = buf;
  }
  ERR_clear_error();
  return absl::Status(code, absl::StrCat(what, ": ", detail));
}

}  // namespace tether::crypto
