// Structured logging: one JSON object a line on stderr (DESIGN §7).
//
//   LogInfo("listener_connected", {{"entity", entity}, {"listener_id", id}});
//
// Thread-safe: each line is written with a single write(2). Never pass secrets (passwords,
// private keys, tokens) as fields: callers log token key names and reasons, not tokens.
#ifndef TETHER_COMMON_BASE_LOG_H_
#define TETHER_COMMON_BASE_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace tether {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

using LogField = std::pair<absl::string_view, std::string>;

// Lines below this level are dropped (default kInfo). Not synchronised: set it at start-up.
void SetMinLogLevel(LogLevel level);

// Formats a log line (without newline): {"ts":"...","level":"info","event":"...",...}.
std::string FormatLogLine(LogLevel level, absl::string_view event,
                          std::initializer_list<LogField> fields);

void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});
inline void LogInfo(absl::string_view event, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kInfo, event, fields);
}
inline void LogWarning(absl::string_view event, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kWarning, event, fields);
}
inline void LogError(absl::string_view event, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kError, event, fields);
}

// JSON string escaping (quotes not included).
std::string JsonEscape(absl::string_view text);

}  // namespace tether

#endif  // TETHER_COMMON_BASE_LOG_H_
