// Status propagation macros. Debian's abseil (20220623) ships absl::Status but not the macros
// Google uses internally, so Tether defines them once here.
//
//   RETURN_IF_ERROR(DoThing());                    // returns the status if it is not OK
//   ASSIGN_OR_RETURN(auto value, ComputeValue());  // unwraps a StatusOr or returns its status
#ifndef TETHER_COMMON_BASE_STATUS_MACROS_H_
#define TETHER_COMMON_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TETHER_STATUS_CONCAT_INNER_(a, b) a##b
#define TETHER_STATUS_CONCAT_(a, b) TETHER_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                               \
  do {                                                      \
    if (::absl::Status tether_status_ = (expr); !tether_status_.ok()) { \
      return tether_status_;                                \
    }                                                       \
  } while (false)

#define TETHER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  TETHER_ASSIGN_OR_RETURN_IMPL_(TETHER_STATUS_CONCAT_(tether_statusor_, __LINE__), lhs, expr)

#endif  // TETHER_COMMON_BASE_STATUS_MACROS_H_
