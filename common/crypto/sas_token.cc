#include "common/crypto/sas_token.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"

namespace tether::crypto {
namespace {

constexpr absl::string_view kPrefix = "SharedAccessSignature ";
constexpr absl::string_view kFailurePayload = "type.tether.dev/sas-failure";
constexpr std::size_t kMaxTokenSize = 4096;
constexpr std::size_t kMinKeySize = 32;

absl::Status Fail(absl::StatusCode code, SasFailure failure, absl::string_view message) {
  absl::Status status(code, message);
  status.SetPayload(kFailurePayload, absl::Cord(SasFailureLabel(failure)));
  return status;
}

absl::Status Malformed(absl::string_view message) {
  return Fail(absl::StatusCode::kUnauthenticated, SasFailure::kMalformed,
              absl::StrCat("malformed token: ", message));
}

std::string SignatureFor(absl::string_view resource_encoded, absl::string_view expiry_text,
                         const SecretBytes& key) {
  SecretBytes mac = HmacSha256(key.view(), absl::StrCat(resource_encoded, "\n", expiry_text));
  return Base64Encode(mac.view());
}

}  // namespace

absl::string_view SasFailureLabel(SasFailure failure) {
  switch (failure) {
    case SasFailure::kNone:
      return "none";
    case SasFailure::kMalformed:
      return "malformed";
    case SasFailure::kUnknownKey:
      return "unknown_key";
    case SasFailure::kBadSignature:
      return "bad_signature";
    case SasFailure::kExpired:
      return "expired";
    case SasFailure::kOutOfScope:
      return "out_of_scope";
    case SasFailure::kMissingRight:
      return "missing_right";
  }
  return "none";
}

SasFailure SasFailureOf(const absl::Status& status) {
  auto payload = status.GetPayload(kFailurePayload);
  if (!payload) return SasFailure::kNone;
  for (SasFailure f : {SasFailure::kMalformed, SasFailure::kUnknownKey, SasFailure::kBadSignature,
                       SasFailure::kExpired, SasFailure::kOutOfScope, SasFailure::kMissingRight}) {
    if (*payload == SasFailureLabel(f)) return f;
  }
  return SasFailure::kNone;
}

std::string SasUrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

absl::StatusOr<std::string> SasUrlDecode(absl::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size()) {
        return absl::InvalidArgumentError("truncated percent escape");
      }
      int value = 0;
      for (int k = 1; k <= 2; ++k) {
        char h = text[i + k];
        if (!absl::ascii_isxdigit(static_cast<unsigned char>(h))) {
          return absl::InvalidArgumentError("invalid percent escape");
        }
        value = value * 16 + (absl::ascii_isdigit(static_cast<unsigned char>(h))
                                  ? h - '0'
                                  : absl::ascii_tolower(static_cast<unsigned char>(h)) - 'a' + 10);
      }
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<std::string> SasResourcePath(absl::string_view uri) {
  absl::string_view rest = uri;
  if (std::size_t scheme = rest.find("://"); scheme != absl::string_view::npos) {
    rest.remove_prefix(scheme + 3);
    std::size_t slash = rest.find('/');
    rest = slash == absl::string_view::npos ? absl::string_view() : rest.substr(slash);
  } else if (!absl::StartsWith(rest, "/")) {
    // "host[:port]/path" without a scheme.
    std::size_t slash = rest.find('/');
    rest = slash == absl::string_view::npos ? absl::string_view() : rest.substr(slash);
  }
  if (std::size_t q = rest.find_first_of("?#"); q != absl::string_view::npos) {
    rest = rest.substr(0, q);
  }
  std::string path = absl::AsciiStrToLower(rest);
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment == "." || segment == "..") {
      return absl::InvalidArgumentError("resource path has a '.' or '..' segment");
    }
  }
  return path;
}

std::string CreateSasToken(absl::string_view resource_uri, absl::string_view key_name,
                           const SecretBytes& key, int64_t expiry_unix) {
  std::string sr = SasUrlEncode(resource_uri);
  std::string se = absl::StrCat(expiry_unix);
  return absl::StrCat(kPrefix, "sr=", sr, "&sig=", SasUrlEncode(SignatureFor(sr, se, key)),
                      "&se=", se, "&skn=", SasUrlEncode(key_name));
}

absl::StatusOr<SasToken> ParseSasToken(absl::string_view token) {
  if (token.empty()) {
    return Fail(absl::StatusCode::kUnauthenticated, SasFailure::kMalformed, "missing token");
  }
  if (token.size() > kMaxTokenSize) return Malformed("longer than 4096 bytes");
  if (token.size() >= kPrefix.size() &&
      absl::EqualsIgnoreCase(token.substr(0, kPrefix.size()), kPrefix)) {
    token.remove_prefix(kPrefix.size());
  }
  SasToken parsed;
  bool have_sr = false, have_sig = false, have_se = false, have_skn = false;
  for (absl::string_view field : absl::StrSplit(token, '&')) {
    std::size_t eq = field.find('=');
    if (eq == absl::string_view::npos) return Malformed("field without '='");
    absl::string_view name = field.substr(0, eq);
    absl::string_view value = field.substr(eq + 1);
    bool* seen = name == "sr"    ? &have_sr
                 : name == "sig" ? &have_sig
                 : name == "se"  ? &have_se
                 : name == "skn" ? &have_skn
                                 : nullptr;
    if (seen == nullptr) continue;  // unknown fields are ignored, as Azure does
    if (*seen) return Malformed(absl::StrCat("repeated field ", name));
    *seen = true;
    auto decoded = SasUrlDecode(value);
    if (!decoded.ok()) return Malformed(absl::StrCat(name, ": ", decoded.status().message()));
    if (name == "sr") {
      parsed.resource_encoded = std::string(value);
      parsed.resource = *std::move(decoded);
    } else if (name == "sig") {
      parsed.signature = *std::move(decoded);
    } else if (name == "se") {
      parsed.expiry_text = std::string(value);
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(),
                       [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
          !absl::SimpleAtoi(value, &parsed.expiry_unix)) {
        return Malformed("se is not a unix time");
      }
    } else {
      parsed.key_name = *std::move(decoded);
    }
  }
  if (!have_sr) return Malformed("missing sr");
  if (!have_sig) return Malformed("missing sig");
  if (!have_se) return Malformed("missing se");
  if (!have_skn) return Malformed("missing skn");
  return parsed;
}

absl::Status VerifySasToken(const SasToken& token, const SecretBytes& key,
                            absl::string_view entity, int64_t now_unix) {
  std::string expected = SignatureFor(token.resource_encoded, token.expiry_text, key);
  if (!ConstantTimeEquals(token.signature, expected)) {
    return Fail(absl::StatusCode::kUnauthenticated, SasFailure::kBadSignature,
                "token signature does not match");
  }
  if (now_unix >= token.expiry_unix) {
    return Fail(absl::StatusCode::kUnauthenticated, SasFailure::kExpired,
                absl::StrCat("token expired at ", token.expiry_unix));
  }
  auto scope = SasResourcePath(token.resource);
  if (!scope.ok()) return Malformed(scope.status().message());
  auto target = SasResourcePath(entity);
  if (!target.ok()) {
    return Fail(absl::StatusCode::kPermissionDenied, SasFailure::kOutOfScope,
                absl::StrCat("invalid entity: ", target.status().message()));
  }
  if (*target != *scope && !absl::StartsWith(*target, absl::StrCat(*scope, "/"))) {
    return Fail(absl::StatusCode::kPermissionDenied, SasFailure::kOutOfScope,
                absl::StrCat("token for ", *scope, " does not cover ", *target));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> ParseSasRights(absl::string_view text) {
  uint32_t rights = 0;
  for (absl::string_view word : absl::StrSplit(text, ',')) {
    word = absl::StripAsciiWhitespace(word);
    if (absl::EqualsIgnoreCase(word, "listen")) {
      rights |= kSasListen;
    } else if (absl::EqualsIgnoreCase(word, "send")) {
      rights |= kSasSend;
    } else if (absl::EqualsIgnoreCase(word, "manage")) {
      rights |= kSasManage | kSasListen | kSasSend;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown right '", word, "'"));
    }
  }
  return rights;
}

SasKeyRing::SasKeyRing(std::vector<SasKey> keys)
    : keys_(std::make_shared<const std::vector<SasKey>>(std::move(keys))) {}

absl::StatusOr<SasKeyRing> SasKeyRing::Parse(absl::string_view text) {
  std::vector<SasKey> keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (std::size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": expected NAME KEY RIGHTS"));
    }
    if (fields[1].size() < kMinKeySize) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": key must be at least 32 characters"));
    }
    auto rights = ParseSasRights(fields[2]);
    if (!rights.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", rights.status().message()));
    }
    for (const SasKey& k : keys) {
      if (k.name == fields[0]) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": duplicate key name ", fields[0]));
      }
    }
    keys.push_back(SasKey{std::string(fields[0]), SecretBytes(fields[1]), *rights});
  }
  if (keys.empty()) return absl::InvalidArgumentError("no keys defined");
  return SasKeyRing(std::move(keys));
}

const SasKey* SasKeyRing::Find(absl::string_view name) const {
  for (const SasKey& k : *keys_) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

absl::StatusOr<std::string> SasKeyRing::Authorize(absl::string_view token,
                                                  absl::string_view entity, SasRight right,
                                                  int64_t now_unix) const {
  ASSIGN_OR_RETURN(SasToken parsed, ParseSasToken(token));
  const SasKey* key = Find(parsed.key_name);
  if (key == nullptr) {
    return Fail(absl::StatusCode::kUnauthenticated, SasFailure::kUnknownKey,
                absl::StrCat("unknown key name '", parsed.key_name, "'"));
  }
  RETURN_IF_ERROR(VerifySasToken(parsed, key->key, entity, now_unix));
  if ((key->rights & right) == 0) {
    return Fail(absl::StatusCode::kPermissionDenied, SasFailure::kMissingRight,
                absl::StrCat("key '", key->name, "' lacks the ",
                             right == kSasListen ? "Listen"
                             : right == kSasSend ? "Send"
                                                 : "Manage",
                             " right"));
  }
  return key->name;
}

}  // namespace tether::crypto
