#include "cloud/rest_api.h"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cloud/portal/portal_assets.h"
#include "common/base/log.h"
#include "google/protobuf/util/json_util.h"

namespace tether::cloud {
namespace {

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kFailedPrecondition: return 412;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

// "NOT_FOUND" for kNotFound: the gRPC name of the code.
std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);  // "NOT_FOUND", as gRPC spells it
  return name.empty() ? "UNKNOWN" : name;
}

// `text` as a JSON string literal.
std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  return out + "\"";
}

http::Response JsonResponse(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body = std::move(body);
  portal::AddSecurityHeaders(response);
  return response;
}

http::Response ErrorResponse(const absl::Status& status) {
  return JsonResponse(HttpStatusFor(status.code()),
                      absl::StrCat("{\"error\":{\"code\":", JsonString(CodeName(status.code())),
                                   ",\"message\":", JsonString(status.message()), "}}"));
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::InternalError(absl::StrCat("cannot print JSON: ", status.ToString()));
  return json;
}

template <typename Request>
absl::StatusOr<Request> FromJson(const std::string& body) {
  Request request;
  if (body.empty()) return request;  // no body: every field at its default
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(body, &request, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request body is not a valid ", Request::descriptor()->name(), ": ",
                     std::string(status.message())));
  }
  return request;
}

// An endpoint calling fn(caller, request) and printing its answer.
template <typename Request, typename Fn>
std::function<absl::StatusOr<std::string>(const Caller&, const std::string&)> Bind(Fn fn) {
  return [fn](const Caller& caller, const std::string& body) -> absl::StatusOr<std::string> {
    absl::StatusOr<Request> request = FromJson<Request>(body);
    if (!request.ok()) return request.status();
    auto result = fn(caller, *request);
    if (!result.ok()) return result.status();
    return ToJson(*result);
  };
}

// The origin ("https://host:port") a browser sends for pages served by this server.
bool SameOrigin(const http::Request& request) {
  std::string origin = request.Header("Origin");
  if (origin.empty()) return true;  // not a browser, or a same-origin GET
  std::string host = absl::AsciiStrToLower(request.Header("Host"));
  origin = absl::AsciiStrToLower(origin);
  return origin == absl::StrCat("https://", host) || origin == absl::StrCat("http://", host);
}

}  // namespace

RestApi::RestApi(Authenticator* auth, CloudService* service, RunManager* runs) : auth_(auth) {
#define TETHER_REST(Service, Method, Request, target)                                        \
  endpoints_[#Service "/" #Method] = Bind<proto::Request>(                                   \
      [target](const Caller& caller, const proto::Request& request) {                        \
        return target->Method(caller, request);                                              \
      })

  endpoints_["UserService/WhoAmI"] = Bind<proto::WhoAmIRequest>(
      [service](const Caller& caller, const proto::WhoAmIRequest&) { return service->WhoAmI(caller); });
  endpoints_["UserService/CreateUser"] = Bind<proto::CreateUserRequest>(
      [service](const Caller& caller, const proto::CreateUserRequest& request) {
        return service->CreateUser(&caller, request);
      });
  TETHER_REST(UserService, CreateToken, CreateTokenRequest, service);
  TETHER_REST(UserService, RevokeToken, RevokeTokenRequest, service);
  endpoints_["UserService/ListTokens"] = Bind<proto::ListTokensRequest>(
      [service](const Caller& caller, const proto::ListTokensRequest&) {
        return service->ListTokens(caller);
      });

  TETHER_REST(MachineService, RegisterMachine, RegisterMachineRequest, service);
  TETHER_REST(MachineService, ListMachines, ListMachinesRequest, service);
  TETHER_REST(MachineService, GetMachine, GetMachineRequest, service);
  TETHER_REST(MachineService, DeleteMachine, DeleteMachineRequest, service);
  TETHER_REST(MachineService, ShareMachine, ShareMachineRequest, service);
  TETHER_REST(MachineService, UnshareMachine, UnshareMachineRequest, service);

  TETHER_REST(GroupService, CreateGroup, CreateGroupRequest, service);
  TETHER_REST(GroupService, LeaveGroup, LeaveGroupRequest, service);
  TETHER_REST(GroupService, ListGroups, ListGroupsRequest, service);
  TETHER_REST(GroupService, GetGroup, GetGroupRequest, service);
  TETHER_REST(GroupService, DeleteGroup, DeleteGroupRequest, service);
  TETHER_REST(GroupService, ShareGroup, ShareGroupRequest, service);
  TETHER_REST(GroupService, UnshareGroup, UnshareGroupRequest, service);

  TETHER_REST(ClusterService, CreateCluster, CreateClusterRequest, service);
  TETHER_REST(ClusterService, JoinCluster, JoinClusterRequest, service);
  TETHER_REST(ClusterService, ListClusters, ListClustersRequest, service);
  TETHER_REST(ClusterService, GetCluster, GetClusterRequest, service);
  TETHER_REST(ClusterService, RemoveClusterMember, RemoveClusterMemberRequest, service);
  TETHER_REST(ClusterService, DeleteCluster, DeleteClusterRequest, service);

  TETHER_REST(ConnectionService, CreateConnection, CreateConnectionRequest, service);
  TETHER_REST(ConnectionService, UpdateConnectionCredentials, UpdateConnectionCredentialsRequest,
              service);
  TETHER_REST(ConnectionService, ListConnections, ListConnectionsRequest, service);
  TETHER_REST(ConnectionService, GetConnection, GetConnectionRequest, service);
  TETHER_REST(ConnectionService, DeleteConnection, DeleteConnectionRequest, service);

  TETHER_REST(FlowService, CreateFlow, CreateFlowRequest, service);
  TETHER_REST(FlowService, UpdateFlow, UpdateFlowRequest, service);
  TETHER_REST(FlowService, GetFlow, GetFlowRequest, service);
  TETHER_REST(FlowService, ListFlows, ListFlowsRequest, service);

  TETHER_REST(RunService, RunFlow, RunFlowRequest, runs);
  TETHER_REST(RunService, GetRun, GetRunRequest, runs);
  TETHER_REST(RunService, CancelRun, CancelRunRequest, runs);
  TETHER_REST(RunService, ListRuns, ListRunsRequest, runs);
#undef TETHER_REST

  // The events durable now, without waiting (recorded_only), at most a batch: a full batch ends
  // the call with kCancelled from emit, which ends the answer normally too.
  endpoints_["RunService/WatchRun"] = [runs](const Caller& caller,
                                             const std::string& body) -> absl::StatusOr<std::string> {
    absl::StatusOr<proto::WatchRunRequest> request = FromJson<proto::WatchRunRequest>(body);
    if (!request.ok()) return request.status();
    request->set_recorded_only(true);  // an I/O thread never waits on a run
    std::vector<std::string> events;
    absl::Status printed;
    absl::Status status = runs->WatchRun(
        caller, *request,
        [&](const proto::RunEvent& event) {
          absl::StatusOr<std::string> json = ToJson(event);
          if (!json.ok()) {
            printed = json.status();
            return false;
          }
          events.push_back(*std::move(json));
          return events.size() < static_cast<size_t>(kRestWatchBatch);
        },
        [] { return false; });
    if (!printed.ok()) return printed;
    if (!status.ok() && status.code() != absl::StatusCode::kCancelled) return status;
    return absl::StrCat("{\"events\":[", absl::StrJoin(events, ","), "]}");
  };
}

http::Response RestApi::Handle(const http::Request& request) const {
  std::string method(absl::string_view(request.path).substr(kRestPrefix.size()));
  auto count = [&](const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    ++calls_[CodeName(status.code())];
  };
  auto fail = [&](const absl::Status& status) {
    count(status);
    if (status.code() == absl::StatusCode::kInternal || status.code() == absl::StatusCode::kDataLoss ||
        status.code() == absl::StatusCode::kUnknown) {
      // The details (store errors, file names) are for the operator's log, not the browser.
      LogError("rest_call_failed", {{"method", method}, {"error", status.ToString()}});
      return ErrorResponse(absl::Status(status.code(), "internal error; the cloud's log has the details"));
    }
    return ErrorResponse(status);
  };

  auto endpoint = endpoints_.find(method);
  if (endpoint == endpoints_.end()) {
    return fail(absl::NotFoundError(absl::StrCat("no API method ", method)));
  }
  if (request.method != "POST") {
    http::Response response = fail(absl::InvalidArgumentError("API methods take POST"));
    response.status = 405;
    response.headers.emplace_back("Allow", "POST");
    return response;
  }
  if (!SameOrigin(request)) {
    return fail(absl::PermissionDeniedError("cross-origin API calls are refused"));
  }
  std::string content_type = absl::AsciiStrToLower(request.Header("Content-Type"));
  if (!request.body.empty() && !absl::StartsWith(content_type, "application/json")) {
    http::Response response = fail(absl::InvalidArgumentError("the body must be application/json"));
    response.status = 415;
    return response;
  }
  absl::StatusOr<Caller> caller = auth_->AuthenticateUser(request.Header("Authorization"));
  if (!caller.ok()) {
    http::Response response = fail(caller.status());
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
  }
  absl::StatusOr<std::string> answer = endpoint->second(*caller, request.body);
  if (!answer.ok()) return fail(answer.status());
  count(absl::OkStatus());
  return JsonResponse(200, *std::move(answer));
}

size_t RestApi::BodyLimitFor(const http::Request& head, size_t large) const {
  if (!absl::StartsWith(head.path, kRestPrefix)) return kSmallBody;
  // A declared length within the small limit needs no token check here (the parser holds the body
  // to its Content-Length); Handle authenticates every call anyway. So only large or chunked
  // bodies pay for a second check.
  size_t declared = 0;
  if (absl::SimpleAtoi(head.Header("Content-Length"), &declared) && declared <= kSmallBody &&
      head.Header("Transfer-Encoding").empty()) {
    return kSmallBody;
  }
  return auth_->AuthenticateUser(head.Header("Authorization")).ok() ? large : kSmallBody;
}

std::map<std::string, uint64_t> RestApi::CallCounts() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

}  // namespace tether::cloud
