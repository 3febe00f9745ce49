// Reader for the RFC 9180 appendix format used in testdata/: "name: hex" fields (values may wrap
// over following lines), records separated by blank lines, Markdown fences and headings ignored.
#ifndef TETHER_COMMON_CRYPTO_TEST_VECTORS_H_
#define TETHER_COMMON_CRYPTO_TEST_VECTORS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tether::crypto {

// One record: field name → raw value text (hex with wrapped lines joined).
using VectorRecord = std::map<std::string, std::string>;

// Reads `path` (relative to the test's runfiles directory) into records, in file order.
absl::StatusOr<std::vector<VectorRecord>> ReadVectorFile(const std::string& path);

// An RFC 9180 appendix section: the setup values, the encryptions, the exports.
struct HpkeVectorSet {
  VectorRecord setup;
  std::vector<VectorRecord> encryptions;
  std::vector<VectorRecord> exports;
};

// Reads and sorts an HPKE vector file; a file without a setup record is kInvalidArgument.
absl::StatusOr<HpkeVectorSet> ReadHpkeVectors(const std::string& path);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_TEST_VECTORS_H_
