#include "tools/crypto_cli/crypto_cli.h"

#include <map>
#include <set>
#include <vector>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/hex.h"
#include "common/base/status_macros.h"
#include "common/crypto/hpke.h"
#include "common/crypto/password_kdf.h"
#include "common/crypto/sas_token.h"

namespace tether::tools {
namespace {

using crypto::HpkeSuite;
using crypto::SecretBytes;

constexpr char kUsage[] =
    "usage: crypto_cli <command> [--flag value ...]\n"
    "  hpke-derive-keypair --kem 32 --ikm HEX                       -> sk=HEX pk=HEX\n"
    "  hpke-seal   --kem 32 --kdf 1 --aead A --pk HEX --info HEX --aad HEX --pt HEX\n"
    "              [--ikm-e HEX] [--seq N]                          -> enc=HEX ct=HEX\n"
    "  hpke-open   --kem 32 --kdf 1 --aead A --sk HEX --enc HEX --info HEX --aad HEX --ct HEX\n"
    "              [--seq N]                                        -> plaintext HEX\n"
    "  hpke-export --kem 32 --kdf 1 --aead A --info HEX --context HEX --length L\n"
    "              (--sk HEX --enc HEX | --pk HEX --ikm-e HEX)      -> HEX\n"
    "  scrypt      --password STR --salt STR --n N --r R --p P --length L -> HEX\n"
    "  sas-sign    --resource URI --key-name NAME --key KEY --expiry UNIX -> token\n"
    "  sas-verify  --token T --key-name NAME --key KEY --resource URI --now UNIX -> ok\n"
    "exit status: 0 ok, 1 sas-verify refused the token, 2 bad input (including a\n"
    "ciphertext that does not open)\n";

// sas-verify's refusal of a well-formed token (exit 1), as opposed to bad input (exit 2).
struct CliError {
  int exit_code;
  std::string message;
};

class Flags {
 public:
  static absl::StatusOr<Flags> Parse(const std::vector<std::string>& args,
                                     const std::set<std::string>& allowed) {
    Flags flags;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& arg = args[i];
      if (!absl::StartsWith(arg, "--")) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
      }
      std::string name;
      std::string value;
      if (std::size_t eq = arg.find('='); eq != std::string::npos) {
        name = arg.substr(2, eq - 2);
        value = arg.substr(eq + 1);
      } else {
        name = arg.substr(2);
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        }
        value = args[++i];
      }
      if (!allowed.count(name)) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
      }
      if (!flags.values_.emplace(name, value).second) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " given twice"));
      }
    }
    return flags;
  }

  bool Has(const std::string& name) const { return values_.count(name) > 0; }

  absl::StatusOr<std::string> Text(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return absl::InvalidArgumentError(absl::StrCat("missing --", name));
    return it->second;
  }

  absl::StatusOr<std::string> Hex(const std::string& name) const {
    ASSIGN_OR_RETURN(std::string text, Text(name));
    auto bytes = HexDecode(text);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", bytes.status().message()));
    }
    return bytes;
  }

  absl::StatusOr<uint64_t> Number(const std::string& name) const {
    ASSIGN_OR_RETURN(std::string text, Text(name));
    uint64_t value = 0;
    bool ok = absl::StartsWithIgnoreCase(text, "0x")
                  ? absl::SimpleHexAtoi(absl::string_view(text).substr(2), &value)
                  : absl::SimpleAtoi(text, &value);
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is not a number: '", text, "'"));
    }
    return value;
  }

 private:
  std::map<std::string, std::string> values_;
};

absl::StatusOr<HpkeSuite> Suite(const Flags& flags) {
  ASSIGN_OR_RETURN(uint64_t kem, flags.Number("kem"));
  ASSIGN_OR_RETURN(uint64_t kdf, flags.Number("kdf"));
  ASSIGN_OR_RETURN(uint64_t aead, flags.Number("aead"));
  if (kem > 0xffff || kdf > 0xffff || aead > 0xffff) {
    return absl::InvalidArgumentError("suite ids are 16-bit values");
  }
  return HpkeSuite::FromIds(static_cast<uint32_t>(kem), static_cast<uint32_t>(kdf),
                            static_cast<uint32_t>(aead));
}

absl::StatusOr<std::string> DeriveKeyPair(const Flags& flags) {
  ASSIGN_OR_RETURN(uint64_t kem, flags.Number("kem"));
  if (kem != crypto::kKemX25519HkdfSha256) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported KEM id ", kem));
  }
  ASSIGN_OR_RETURN(std::string ikm, flags.Hex("ikm"));
  ASSIGN_OR_RETURN(crypto::X25519KeyPair kp, crypto::HpkeDeriveKeyPair(SecretBytes(ikm)));
  return absl::StrCat("sk=", HexEncode(kp.private_key.view()), " pk=", HexEncode(kp.public_key));
}

absl::StatusOr<crypto::HpkeSender> Sender(const Flags& flags, const HpkeSuite& suite) {
  ASSIGN_OR_RETURN(std::string pk, flags.Hex("pk"));
  ASSIGN_OR_RETURN(std::string info, flags.Hex("info"));
  if (flags.Has("ikm-e")) {
    ASSIGN_OR_RETURN(std::string ikm_e, flags.Hex("ikm-e"));
    SecretBytes ikm(ikm_e);
    return crypto::HpkeSetupBaseSender(suite, pk, info, &ikm);
  }
  return crypto::HpkeSetupBaseSender(suite, pk, info);
}

absl::StatusOr<crypto::HpkeContext> Receiver(const Flags& flags, const HpkeSuite& suite) {
  ASSIGN_OR_RETURN(std::string sk, flags.Hex("sk"));
  ASSIGN_OR_RETURN(std::string enc, flags.Hex("enc"));
  ASSIGN_OR_RETURN(std::string info, flags.Hex("info"));
  return crypto::HpkeSetupBaseReceiver(suite, enc, SecretBytes(sk), info);
}

absl::StatusOr<uint64_t> Sequence(const Flags& flags) {
  if (!flags.Has("seq")) return 0;
  return flags.Number("seq");
}

absl::StatusOr<std::string> Seal(const Flags& flags) {
  ASSIGN_OR_RETURN(HpkeSuite suite, Suite(flags));
  ASSIGN_OR_RETURN(std::string aad, flags.Hex("aad"));
  ASSIGN_OR_RETURN(std::string pt, flags.Hex("pt"));
  ASSIGN_OR_RETURN(uint64_t seq, Sequence(flags));
  ASSIGN_OR_RETURN(crypto::HpkeSender sender, Sender(flags, suite));
  sender.context.set_sequence(seq);
  ASSIGN_OR_RETURN(std::string ct, sender.context.Seal(aad, pt));
  return absl::StrCat("enc=", HexEncode(sender.enc), " ct=", HexEncode(ct));
}

absl::StatusOr<std::string> Open(const Flags& flags) {
  ASSIGN_OR_RETURN(HpkeSuite suite, Suite(flags));
  ASSIGN_OR_RETURN(std::string aad, flags.Hex("aad"));
  ASSIGN_OR_RETURN(std::string ct, flags.Hex("ct"));
  ASSIGN_OR_RETURN(uint64_t seq, Sequence(flags));
  ASSIGN_OR_RETURN(crypto::HpkeContext receiver, Receiver(flags, suite));
  receiver.set_sequence(seq);
  ASSIGN_OR_RETURN(SecretBytes pt, receiver.Open(aad, ct));
  return HexEncode(pt.view());
}

absl::StatusOr<std::string> Export(const Flags& flags) {
  ASSIGN_OR_RETURN(HpkeSuite suite, Suite(flags));
  ASSIGN_OR_RETURN(std::string context, flags.Hex("context"));
  ASSIGN_OR_RETURN(uint64_t length, flags.Number("length"));
  if (flags.Has("sk")) {
    ASSIGN_OR_RETURN(crypto::HpkeContext receiver, Receiver(flags, suite));
    ASSIGN_OR_RETURN(SecretBytes value, receiver.Export(context, length));
    return HexEncode(value.view());
  }
  ASSIGN_OR_RETURN(crypto::HpkeSender sender, Sender(flags, suite));
  ASSIGN_OR_RETURN(SecretBytes value, sender.context.Export(context, length));
  return HexEncode(value.view());
}

absl::StatusOr<std::string> ScryptCommand(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string password, flags.Text("password"));
  ASSIGN_OR_RETURN(std::string salt, flags.Text("salt"));
  crypto::ScryptParams params;
  ASSIGN_OR_RETURN(params.n, flags.Number("n"));
  ASSIGN_OR_RETURN(uint64_t r, flags.Number("r"));
  ASSIGN_OR_RETURN(uint64_t p, flags.Number("p"));
  ASSIGN_OR_RETURN(uint64_t length, flags.Number("length"));
  if (r > 0xffffffff || p > 0xffffffff) return absl::InvalidArgumentError("--r/--p out of range");
  params.r = static_cast<uint32_t>(r);
  params.p = static_cast<uint32_t>(p);
  ASSIGN_OR_RETURN(SecretBytes key, crypto::Scrypt(password, salt, params, length));
  return HexEncode(key.view());
}

absl::StatusOr<std::string> SasSign(const Flags& flags) {
  ASSIGN_OR_RETURN(std::string resource, flags.Text("resource"));
  ASSIGN_OR_RETURN(std::string key_name, flags.Text("key-name"));
  ASSIGN_OR_RETURN(std::string key, flags.Text("key"));
  ASSIGN_OR_RETURN(uint64_t expiry, flags.Number("expiry"));
  if (expiry > 999'999'999'999'999'999ull) return absl::InvalidArgumentError("--expiry too large");
  return crypto::CreateSasToken(resource, key_name, SecretBytes(key),
                                static_cast<int64_t>(expiry));
}

// Returns "ok", or a CliError with exit code 1 for a token that does not verify.
absl::StatusOr<std::string> SasVerify(const Flags& flags, CliError* verification) {
  ASSIGN_OR_RETURN(std::string token, flags.Text("token"));
  ASSIGN_OR_RETURN(std::string key_name, flags.Text("key-name"));
  ASSIGN_OR_RETURN(std::string key, flags.Text("key"));
  ASSIGN_OR_RETURN(std::string resource, flags.Text("resource"));
  ASSIGN_OR_RETURN(uint64_t now, flags.Number("now"));
  std::vector<crypto::SasKey> keys;
  keys.push_back(crypto::SasKey{key_name, SecretBytes(key), crypto::kSasListen});
  crypto::SasKeyRing ring(std::move(keys));
  absl::StatusOr<std::string> name =
      ring.Authorize(token, resource, crypto::kSasListen, static_cast<int64_t>(now));
  if (!name.ok()) {
    *verification = CliError{1, absl::StrCat(crypto::SasFailureLabel(
                                                 crypto::SasFailureOf(name.status())),
                                             ": ", name.status().message())};
  }
  return std::string("ok");
}

struct Command {
  std::set<std::string> flags;
  absl::StatusOr<std::string> (*run)(const Flags&);
};

const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"hpke-derive-keypair", {{"kem", "ikm"}, DeriveKeyPair}},
      {"hpke-seal", {{"kem", "kdf", "aead", "pk", "info", "aad", "pt", "ikm-e", "seq"}, Seal}},
      {"hpke-open", {{"kem", "kdf", "aead", "sk", "enc", "info", "aad", "ct", "seq"}, Open}},
      {"hpke-export",
       {{"kem", "kdf", "aead", "sk", "enc", "pk", "ikm-e", "info", "context", "length"}, Export}},
      {"scrypt", {{"password", "salt", "n", "r", "p", "length"}, ScryptCommand}},
      {"sas-sign", {{"resource", "key-name", "key", "expiry"}, SasSign}},
  };
  return *commands;
}

}  // namespace

int RunCryptoCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "help") {
    (args.empty() ? err : out) << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string& name = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  absl::StatusOr<std::string> result;
  CliError verification{0, ""};
  if (name == "sas-verify") {
    auto flags = Flags::Parse(rest, {"token", "key-name", "key", "resource", "now"});
    result = flags.ok() ? SasVerify(*flags, &verification) : flags.status();
  } else if (auto it = Commands().find(name); it != Commands().end()) {
    auto flags = Flags::Parse(rest, it->second.flags);
    result = flags.ok() ? it->second.run(*flags) : flags.status();
  } else {
    err << "crypto_cli: unknown command '" << name << "' (try --help)\n";
    return 2;
  }
  if (verification.exit_code != 0) {
    err << "crypto_cli: " << verification.message << "\n";
    return verification.exit_code;
  }
  if (!result.ok()) {
    err << "crypto_cli: " << name << ": " << result.status().message() << "\n";
    return 2;
  }
  out << *result << "\n";
  return 0;
}

}  // namespace tether::tools
