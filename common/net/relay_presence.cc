#include "common/net/relay_presence.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <boost/core/detail/string_view.hpp>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/flow/json.h"
#include "common/net/dial.h"
#include "common/net/http_client.h"
#include "common/net/relay_status.h"
#include "common/net/url.h"

namespace tether::net {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;

// 25 listener ids of at most 128 characters fit in about 4 KiB.
constexpr std::size_t kBodyLimit = 64 << 10;

// Beast's and Boost.JSON's string_view (both boost::core::string_view) as absl::string_view.
absl::string_view View(boost::core::string_view s) { return absl::string_view(s.data(), s.size()); }

// ws:// and wss:// name the same server as http:// and https://.
std::string HttpUrl(absl::string_view url) {
  const std::size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return std::string(url);
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, sep));
  if (scheme == "ws") return absl::StrCat("http", url.substr(sep));
  if (scheme == "wss") return absl::StrCat("https", url.substr(sep));
  return std::string(url);
}

absl::Status CheckOptions(const PresenceOptions& options) {
  if (options.token.empty()) return absl::InvalidArgumentError("token is empty");
  if (options.token.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
    return absl::InvalidArgumentError("token contains a line break or NUL");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout must be positive");
  }
  return absl::OkStatus();
}

// Checks that `body` is exactly the presence of `entity` ("hc/<name>") and converts it.
absl::StatusOr<proto::ListenerPresence> ParsePresence(absl::string_view body,
                                                      const std::string& entity,
                                                      const std::string& relay) {
  auto bad = [&](absl::string_view why) {
    return absl::InternalError(
        absl::StrCat("relay ", relay, " sent a malformed presence answer for ", entity, ": ", why));
  };
  boost::system::error_code ec;
  const json::value root = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return bad(absl::StrCat("not JSON (", ec.message(), ")"));
  const json::object* object = root.if_object();
  if (object == nullptr) return bad("not a JSON object");

  const json::value* entity_value = object->if_contains("entity");
  const json::value* count_value = object->if_contains("listenerCount");
  const json::value* ids_value = object->if_contains("listenerIds");
  if (entity_value == nullptr || !entity_value->is_string()) return bad("no string \"entity\"");
  if (count_value == nullptr) return bad("no \"listenerCount\"");
  if (ids_value == nullptr || !ids_value->is_array()) return bad("no array \"listenerIds\"");

  if (View(entity_value->get_string()) != entity) {
    return bad(absl::StrCat("it names entity \"", View(entity_value->get_string()), "\""));
  }
  // Boost.JSON keeps integers as int64 or uint64; 2.0 and "2" are not counts.
  std::optional<uint64_t> count;
  if (count_value->is_uint64()) count = count_value->get_uint64();
  if (count_value->is_int64() && count_value->get_int64() >= 0) {
    count = static_cast<uint64_t>(count_value->get_int64());
  }
  if (!count || *count > std::numeric_limits<uint32_t>::max()) {
    return bad("\"listenerCount\" is not a non-negative 32-bit integer");
  }
  const json::array& ids = ids_value->get_array();
  if (*count != ids.size()) {
    return bad(absl::StrCat("\"listenerCount\" is ", *count, " but \"listenerIds\" has ",
                            ids.size(), " entries"));
  }

  std::vector<std::string> sorted;
  sorted.reserve(ids.size());
  for (const json::value& id : ids) {
    if (!id.is_string()) return bad("a listener id is not a string");
    sorted.emplace_back(View(id.get_string()));
  }
  // ListenerPresence promises sorted ids; the relay lists them in connection order.
  std::sort(sorted.begin(), sorted.end());

  proto::ListenerPresence presence;
  presence.set_entity(entity);
  presence.set_listener_count(static_cast<uint32_t>(*count));
  for (std::string& id : sorted) presence.add_listener_ids(std::move(id));
  return presence;
}

}  // namespace

absl::StatusOr<proto::ListenerPresence> FetchRelayPresence(const PresenceOptions& options,
                                                           absl::string_view entity) {
  absl::string_view name = entity;
  absl::ConsumePrefix(&name, "hc/");
  RETURN_IF_ERROR(ValidateRelayName("entity", name));
  RETURN_IF_ERROR(CheckOptions(options));
  ASSIGN_OR_RETURN(auto target, internal::MakeDialTarget(HttpUrl(options.relay_url), options.proxy,
                                                         options.ca_file, options.timeout));
  const std::string entity_name = absl::StrCat("hc/", name);
  const std::string relay = target->endpoint.ToString();

  internal::HttpRequest request(http::verb::get, absl::StrCat("/$hc/", name, "/listeners"), 11);
  request.set(http::field::authorization, options.token);
  request.set(http::field::accept, "application/json");

  // The exchange runs on this thread: io.run() returns once the request is answered or failed
  // and every handler of the connection has finished.
  asio::io_context io(1);
  auto client = std::make_shared<internal::HttpClient>(io.get_executor(), target);
  std::optional<absl::StatusOr<internal::HttpResponse>> result;
  bool timed_out = false;
  asio::steady_timer deadline(io, absl::ToChronoMilliseconds(options.timeout));
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec || result.has_value()) return;
    timed_out = true;
    result = absl::DeadlineExceededError(absl::StrCat("presence of ", entity_name, " from ",
                                                      target->Describe(), ": no answer within ",
                                                      absl::FormatDuration(options.timeout)));
    client->Cancel();
  });
  client->AsyncRequest(std::move(request), options.timeout, kBodyLimit,
                       [&](absl::StatusOr<internal::HttpResponse> response) {
                         if (result.has_value()) return;
                         result = std::move(response);
                         deadline.cancel();
                       });
  io.run();
  client->Cancel();  // closes the connection (kept open for reuse otherwise)

  if (!result.has_value()) {
    return absl::InternalError("presence request ended without a result");  // a bug
  }
  if (!result->ok()) {
    const absl::Status& status = result->status();
    if (absl::IsResourceExhausted(status)) {
      return absl::InternalError(absl::StrCat("relay ", relay, " sent a presence answer for ",
                                              entity_name, " over ", kBodyLimit, " bytes"));
    }
    if (timed_out) return status;
    return absl::Status(status.code(),
                        absl::StrCat("presence of ", entity_name, ": ", status.message()));
  }
  const internal::HttpResponse& response = **result;
  const int code = static_cast<int>(response.result_int());
  if (code != 200) {
    if (code / 100 == 2) {
      return absl::InternalError(absl::StrCat("relay ", relay, " answered HTTP ", code,
                                              " to the presence request for ", entity_name));
    }
    return HttpRefusalStatus(absl::StrCat("relay ", relay, " refused presence of ", entity_name),
                             code, View(response.reason()), response.body());
  }
  return ParsePresence(response.body(), entity_name, relay);
}

}  // namespace tether::net
