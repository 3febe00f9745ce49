// Relay presence (DESIGN §3, docs/RELAY.md): which listeners an entity has on the relay right now,
// from `GET /$hc/<name>/listeners` with a Manage token. The cloud reads it to show a machine or a
// gateway cluster as online.
//
//   PresenceOptions options;
//   options.relay_url = "https://relay.example:9350";
//   options.token = manage_token;   // "SharedAccessSignature sr=...&sig=...&se=...&skn=..."
//   ASSIGN_OR_RETURN(proto::ListenerPresence presence, FetchRelayPresence(options, "machine-42"));
//   bool online = presence.listener_count() > 0;
#ifndef TETHER_COMMON_NET_RELAY_PRESENCE_H_
#define TETHER_COMMON_NET_RELAY_PRESENCE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/proxy.h"
#include "common/proto/relay.pb.h"

namespace tether::net {

struct PresenceOptions {
  // The relay: "https://relay.example:9350" or "wss://..." (TLS), "http://127.0.0.1:port" or
  // "ws://..." for an --insecure dev relay. ws and wss mean http and https: the request is plain
  // HTTP on the relay's one port.
  std::string relay_url;
  // The full SAS token, "SharedAccessSignature sr=...&sig=...&se=...&skn=...", with Manage right
  // for the entity. Sent in the Authorization header.
  std::string token;
  // PEM file of the CA that signed the relay's certificate; empty: the system's trust store.
  std::string ca_file;
  // Unset: HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment. ProxyConfig::Direct() for
  // none.
  std::optional<ProxyConfig> proxy;
  // The whole call: DNS, TCP, proxy CONNECT, TLS, request and response.
  absl::Duration timeout = absl::Seconds(10);
};

// Asks the relay for the listeners of `entity` ("machine-42"; "hc/machine-42" is accepted too)
// and returns them: entity "hc/<name>", listener_count and listener_ids (sorted here, as
// ListenerPresence documents; the relay lists them in connection order).
// Blocks the calling thread for at most options.timeout (plus a DNS lookup that cannot be
// interrupted). One connection per call, closed before returning. Thread-safe: calls are
// independent.
//
// Errors:
//   kInvalidArgument     bad options: relay URL, entity name, empty token or one with a line
//                        break, CA file, proxy URL, timeout not positive
//   kUnavailable         the relay cannot be reached (DNS, connection refused or reset, proxy or
//                        TLS failures)
//   kDeadlineExceeded    no answer within options.timeout
//   kFailedPrecondition  the relay's TLS certificate was not accepted (untrusted, expired, other
//                        host name)
//   kUnauthenticated     the relay answered 401 (no token, bad signature, expired), or a proxy 407
//   kPermissionDenied    the relay answered 403 (the token lacks the Manage right, or its `sr`
//                        does not cover the entity)
//   any other answer but 200: the code HttpRefusalStatus() (relay_status.h) gives it, e.g. 503
//                        kUnavailable
//   kInternal            a 200 answer that is not exactly {"entity":"hc/<name>",
//                        "listenerCount":N,"listenerIds":["id",...]} with N the number of ids and
//                        the entity the one asked for (other members are ignored, for newer
//                        relays); a body over 64 KiB; another 2xx status
// Messages name the relay (never the token or proxy credentials) and, for refusals, carry the
// relay's one-line reason; HttpStatusOf() (relay_status.h) gives the HTTP status of a refusal.
absl::StatusOr<proto::ListenerPresence> FetchRelayPresence(const PresenceOptions& options,
                                                           absl::string_view entity);

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_RELAY_PRESENCE_H_
