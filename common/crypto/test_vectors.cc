#include "common/crypto/test_vectors.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tether::crypto {
namespace {

bool IsHexLine(const std::string& line) {
  if (line.empty()) return false;
  for (char c : line) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<VectorRecord>> ReadVectorFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open test vectors ", path));
  std::vector<VectorRecord> records;
  VectorRecord current;
  std::string last_field;
  std::string raw;
  auto finish = [&] {
    if (!current.empty()) records.push_back(std::move(current));
    current.clear();
    last_field.clear();
  };
  while (std::getline(in, raw)) {
    std::string line(absl::StripAsciiWhitespace(raw));
    if (line.empty() || absl::StartsWith(line, "#") || absl::StartsWith(line, "~~~")) {
      finish();
      continue;
    }
    if (!last_field.empty() && IsHexLine(line)) {
      current[last_field] += line;
      continue;
    }
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": unexpected line: ", line));
    }
    last_field = std::string(absl::StripAsciiWhitespace(line.substr(0, colon)));
    current[last_field] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  finish();
  return records;
}

absl::StatusOr<HpkeVectorSet> ReadHpkeVectors(const std::string& path) {
  absl::StatusOr<std::vector<VectorRecord>> records = ReadVectorFile(path);
  if (!records.ok()) return records.status();
  HpkeVectorSet set;
  for (VectorRecord& r : *records) {
    if (r.count("sequence number")) {
      set.encryptions.push_back(std::move(r));
    } else if (r.count("exporter_context")) {
      set.exports.push_back(std::move(r));
    } else if (r.count("ikmE")) {
      set.setup = std::move(r);
    }
  }
  if (set.setup.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no setup record"));
  return set;
}

}  // namespace tether::crypto
