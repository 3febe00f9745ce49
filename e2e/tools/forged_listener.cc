// forged_listener: an impostor that tries to listen on a machine's relay entity and so take its
// jobs (e2e:security_test). It connects with a SAS token the relay must refuse: signed with a key
// the relay does not have (no --keys_file: a random one), or with the relay's own key but minted
// for another entity (--token_entity). Every attempt is one JSON line on stdout:
//
//   {"event":"refused","http_status":401,"error":"..."}   the relay said no (what we expect)
//   {"event":"connected","state":"connected-websocket"}   the relay took the token
//   {"event":"channel"}                                    a sender's channel reached us
//
// Exit 0 once --attempts attempts were refused with neither a connection nor a channel; 3 if the
// relay let us in or a channel arrived; 4 if --timeout_s passed first; 2 on bad flags.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/crypto/digest.h"
#include "common/crypto/key_file.h"
#include "common/crypto/sas_token.h"
#include "common/net/relay_listener.h"
#include "common/net/relay_status.h"

ABSL_FLAG(std::string, relay_url, "", "the relay, https://localhost:PORT");
ABSL_FLAG(std::string, ca, "", "CA certificate (PEM) of the relay");
ABSL_FLAG(std::string, entity, "", "the entity to listen on, without hc/ (machine-m-...)");
ABSL_FLAG(std::string, listener_id, "forged", "our listener id");
ABSL_FLAG(std::string, keys_file, "",
          "a relay keys file (NAME KEY RIGHTS) whose first key signs the token; empty: a random key");
ABSL_FLAG(std::string, key_name, "cloud", "the key name the token claims when the key is random");
ABSL_FLAG(std::string, token_entity, "", "the entity the token is minted for (default: --entity)");
ABSL_FLAG(int, attempts, 3, "refused attempts to see before exiting 0");
ABSL_FLAG(int, timeout_s, 30, "give up (exit 4) after this long");

namespace {

using tether::net::ListenerState;

void Emit(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// JSON string escaping for error messages (quotes, backslashes, control characters).
std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string entity = absl::GetFlag(FLAGS_entity);
  if (absl::GetFlag(FLAGS_relay_url).empty() || entity.empty()) {
    std::fprintf(stderr, "forged_listener: --relay_url and --entity are required\n");
    return 2;
  }
  std::string key_name = absl::GetFlag(FLAGS_key_name);
  tether::crypto::SecretBytes key;
  if (const std::string keys_file = absl::GetFlag(FLAGS_keys_file); !keys_file.empty()) {
    auto text = tether::crypto::ReadSecretFile(keys_file);
    if (!text.ok()) {
      std::fprintf(stderr, "forged_listener: %s\n", text.status().ToString().c_str());
      return 2;
    }
    auto ring = tether::crypto::SasKeyRing::Parse(text->view());
    if (!ring.ok() || ring->size() == 0) {
      std::fprintf(stderr, "forged_listener: %s: no key\n", keys_file.c_str());
      return 2;
    }
    key_name = ring->keys()[0].name;
    key = ring->keys()[0].key.Clone();
  } else {
    auto random = tether::crypto::RandomSecret(32);
    if (!random.ok()) return 2;
    // The relay's keys are text; a key of hex characters looks like one.
    key = tether::crypto::SecretBytes(tether::crypto::Base64Encode(random->view()));
  }
  std::string token_entity = absl::GetFlag(FLAGS_token_entity);
  if (token_entity.empty()) token_entity = entity;
  const std::string token = tether::crypto::CreateSasToken(
      absl::StrCat("/$hc/", token_entity), key_name, key,
      absl::ToUnixSeconds(tether::WallNow() + absl::Minutes(10)));

  absl::Mutex mu;
  int refused = 0;
  bool breached = false;

  tether::net::ListenerOptions options;
  options.relay_url = absl::GetFlag(FLAGS_relay_url);
  options.ca_file = absl::GetFlag(FLAGS_ca);
  options.entity = entity;
  options.listener_id = absl::GetFlag(FLAGS_listener_id);
  options.proxy = tether::net::ProxyConfig::Direct();
  options.token_provider = [token]() -> absl::StatusOr<std::string> { return token; };
  // Retry quickly: the test wants a few refusals, not a polite client.
  options.backoff = {.initial = absl::Milliseconds(50), .cap = absl::Milliseconds(200)};
  options.on_state = [&](const ListenerState& state) {
    absl::MutexLock lock(&mu);
    if (state.kind == ListenerState::Kind::kConnectedWebSocket ||
        state.kind == ListenerState::Kind::kConnectedLongPoll) {
      breached = true;
      Emit(absl::StrCat(R"({"event":"connected","state":")",
                        tether::net::ListenerStateName(state.kind), "\"}"));
    } else if (state.kind == ListenerState::Kind::kReconnecting && !state.last_error.ok()) {
      ++refused;
      const std::optional<int> http = tether::net::HttpStatusOf(state.last_error);
      Emit(absl::StrCat(R"({"event":"refused","http_status":)", http.value_or(0),
                        R"(,"error":)", Quote(state.last_error.ToString()), "}"));
    }
  };
  options.on_channel = [&](std::shared_ptr<tether::net::ListenerChannel> channel) {
    absl::MutexLock lock(&mu);
    breached = true;
    Emit(R"({"event":"channel"})");
    channel->Reject(503, "forged listener").IgnoreError();
  };

  auto listener = tether::net::RelayListener::Create(std::move(options));
  if (!listener.ok()) {
    std::fprintf(stderr, "forged_listener: %s\n", listener.status().ToString().c_str());
    return 2;
  }
  if (!(*listener)->Start().ok()) return 2;
  const int attempts = absl::GetFlag(FLAGS_attempts);
  bool done = false;
  {
    absl::MutexLock lock(&mu);
    auto finished = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return breached || refused >= attempts; };
    done = mu.AwaitWithTimeout(absl::Condition(&finished),
                               absl::Seconds(absl::GetFlag(FLAGS_timeout_s)));
  }
  (*listener)->Stop();
  absl::MutexLock lock(&mu);
  if (breached) return 3;
  return done ? 0 : 4;
}
