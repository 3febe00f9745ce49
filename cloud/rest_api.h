// The cloud's JSON REST API for the web portal (issue 8), served on the HTTPS port beside /healthz
// and /metrics. It is a thin adapter, like grpc_services.cc: each endpoint authenticates the
// bearer token with the same Authenticator and calls the same CloudService / RunManager method as
// the gRPC call of the same name, so every rule (ownership, validation, limits) has one
// implementation.
//
//   POST /api/v1/<Service>/<Method>        e.g. /api/v1/MachineService/ListMachines
//   Authorization: Bearer <API token>
//   Content-Type: application/json
//   body: the request message in proto3 JSON (unknown fields are refused)
//
//   200: the response message in proto3 JSON, default values included (int64 as strings, enums
//        by name, bytes as base64)
//   4xx/5xx: {"error": {"code": "NOT_FOUND", "message": "..."}} (code = the gRPC code's name)
//
// Every user-authenticated RPC of cloud.proto is available. The machine-signed ones (agents' and
// gateway members' calls) are not: those callers use gRPC. RunService/WatchRun does not stream
// here: it answers at once with {"events": [...]}, every durable event with seq > sinceSeq (at
// most 500; ask again from the last seq), and the portal polls it.
//
// A request with an Origin header must come from this server's own origin (defence in depth: the
// bearer header already rules out cross-site form posts).
#ifndef TETHER_CLOUD_REST_API_H_
#define TETHER_CLOUD_REST_API_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "cloud/authenticator.h"
#include "cloud/cloud_service.h"
#include "cloud/http/http_server.h"
#include "cloud/run_manager.h"

namespace tether::cloud {

// The path prefix of every REST endpoint.
inline constexpr absl::string_view kRestPrefix = "/api/v1/";

// The body limit of requests that are not authenticated API calls.
inline constexpr size_t kSmallBody = 16 << 10;

// Most events one WatchRun answer carries.
inline constexpr int kRestWatchBatch = 500;

class RestApi {
 public:
  // The pointers must outlive the RestApi. Thread-safe.
  RestApi(Authenticator* auth, CloudService* service, RunManager* runs);

  // Answers a request whose path starts with kRestPrefix.
  http::Response Handle(const http::Request& request) const;

  // The body a request may send, from its header alone (http::ServerOptions::body_limit_for):
  // `large` for an API call whose bearer token authenticates, kSmallBody otherwise, so nobody
  // without a token can make the server hold megabytes.
  size_t BodyLimitFor(const http::Request& head, size_t large) const;

  // Calls answered since start, by outcome code name ("OK", "NOT_FOUND", ...), for /metrics.
  std::map<std::string, uint64_t> CallCounts() const;

 private:
  // Runs one method: the caller is authenticated, the JSON body parsed into the request type.
  using Endpoint = std::function<absl::StatusOr<std::string>(const Caller&, const std::string&)>;

  std::map<std::string, Endpoint, std::less<>> endpoints_;
  mutable absl::Mutex mu_;
  mutable std::map<std::string, uint64_t> calls_ ABSL_GUARDED_BY(mu_);
  Authenticator* const auth_;
};

}  // namespace tether::cloud

#endif  // TETHER_CLOUD_REST_API_H_
