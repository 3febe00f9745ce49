// The sender side of the relay (DESIGN §3, docs/RELAY.md): the cloud opens a channel to an
// entity's listener with `GET /$hc/<name>?action=connect` + WebSocket upgrade. The relay holds
// the upgrade until a listener answers: Accept gives a live channel, Reject (or no listener, or no
// answer) gives an HTTP status, which Connect() turns into an absl::Status. A live channel carries
// opaque binary messages both ways until either side closes it.
//
//   ASSIGN_OR_RETURN(auto channel, RelaySender::Connect(options));
//   RETURN_IF_ERROR(channel->Send(request_bytes));
//   ASSIGN_OR_RETURN(std::string reply, channel->Receive(absl::Seconds(30)));
//   channel->Close();
#ifndef TETHER_COMMON_NET_RELAY_SENDER_H_
#define TETHER_COMMON_NET_RELAY_SENDER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/proxy.h"

namespace tether::net {

namespace internal {
class IoThread;
class SenderSession;
}  // namespace internal

struct SenderOptions {
  // "https://relay.example:9350", or "http://127.0.0.1:port" for an --insecure dev relay.
  std::string relay_url;
  // The entity name without "hc/", e.g. "machine-42".
  std::string entity;
  // When set, the channel goes to this listener of the entity only (503 "no listener" if it is
  // not connected), instead of the relay's round-robin choice.
  std::string listener_id;
  // The full SAS token, "SharedAccessSignature sr=...&sig=...&se=...&skn=...", with Send right.
  std::string token;
  // PEM file of the CA that signed the relay's certificate; empty: the system's trust store.
  std::string ca_file;
  // Unset: HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment. ProxyConfig::Direct() for
  // none.
  std::optional<ProxyConfig> proxy;
  // Extra headers on the upgrade request; the relay shows them to the listener in
  // Open.sender_meta (e.g. {"x-tether-run-id", "..."}). Authorization is set from `token`.
  std::vector<std::pair<std::string, std::string>> headers;

  // DNS + TCP + proxy CONNECT + TLS.
  absl::Duration connect_timeout = absl::Seconds(10);
  // The upgrade exchange; the relay holds it up to 30 s while the listener decides.
  absl::Duration handshake_timeout = absl::Seconds(35);
  // A channel with no traffic for this long is dead (a WebSocket ping goes out at half of it).
  absl::Duration idle_timeout = absl::Seconds(60);
  // How long Close() waits for the close handshake.
  absl::Duration close_timeout = absl::Seconds(5);
  // How long Send() waits for room in the send queue.
  absl::Duration send_timeout = absl::Seconds(30);

  // Largest message either way (the relay's frame payload limit, 1 MiB by default).
  std::size_t max_message_bytes = 1 << 20;
  // Bytes accepted by Send() and not yet written to the socket (Send() blocks beyond).
  std::size_t send_queue_bytes = 4 << 20;
  // Bytes received and not yet taken by Receive(); beyond it the channel stops reading, which
  // pushes back to the listener through the relay's bounded queues.
  std::size_t receive_queue_bytes = 4 << 20;
};

// A live channel to one listener. Owns its I/O thread.
//
// Thread-safety: all methods are thread-safe. The intended use is one thread calling Receive()
// and another calling Send(); messages of concurrent Send() calls go out in some order. Close()
// (and the destructor) may be called from any thread, also while another thread is blocked in
// Receive() or Send(), which then return.
class SenderChannel {
 public:
  SenderChannel(const SenderChannel&) = delete;
  SenderChannel& operator=(const SenderChannel&) = delete;
  // Closes the channel (code 1000) if it is still open.
  ~SenderChannel();

  // Queues one binary message. Errors: kInvalidArgument (over max_message_bytes),
  // kDeadlineExceeded (no room in the send queue within send_timeout), or, once the channel is
  // closed, the status Receive() reports for the close.
  absl::Status Send(absl::string_view message);

  // The next message from the listener, waiting at most `timeout`. Errors: kDeadlineExceeded (no
  // message in time; the channel stays open); after the peer closed the channel (messages
  // received before the close are returned first): kAborted "closed <code>: <reason>" (e.g.
  // "closed 4001: listener gone"), see close_code(); kUnavailable when the connection was lost
  // without a close (close_code() 1006); kCancelled after this side's Close().
  absl::StatusOr<std::string> Receive(absl::Duration timeout);

  // Closes the channel: flushes queued messages, sends a WebSocket close with `code` and
  // `reason` (at most 123 bytes), waits up to close_timeout for the relay's answer, then stops
  // the I/O thread. OK on a clean close; kDeadlineExceeded if the answer did not come (the
  // connection is dropped anyway); kFailedPrecondition if the channel had already ended (with
  // that status in the message). Idempotent.
  absl::Status Close(uint32_t code = 1000, absl::string_view reason = "");

  // The close code and reason once the channel is closed: the peer's, 1006 for a lost
  // connection, or the ones given to Close().
  std::optional<uint32_t> close_code() const;
  std::string close_reason() const;

 private:
  friend class RelaySender;
  SenderChannel(std::unique_ptr<internal::IoThread> io,
                std::shared_ptr<internal::SenderSession> session);

  std::unique_ptr<internal::IoThread> io_;
  std::shared_ptr<internal::SenderSession> session_;
};

class RelaySender {
 public:
  // Opens a channel to a listener of `options.entity`. Blocks for at most connect_timeout +
  // handshake_timeout. Errors: kInvalidArgument (bad options: URL, entity name, CA file, proxy
  // URL); transport failures as in the dial (kUnavailable, kDeadlineExceeded,
  // kFailedPrecondition for an unaccepted certificate, kUnauthenticated for a proxy 407); and
  // the relay's answer when it is not 101: 503 kUnavailable ("no listener"), 504
  // kDeadlineExceeded (the listener did not answer), 401 kUnauthenticated, 403
  // kPermissionDenied, 429 kResourceExhausted, and any other status (e.g. a listener's Reject)
  // with the code of HttpRefusalStatus() and a message holding the HTTP status and the body's
  // reason; HttpStatusOf() gives the number.
  static absl::StatusOr<std::unique_ptr<SenderChannel>> Connect(const SenderOptions& options);
};

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_RELAY_SENDER_H_
