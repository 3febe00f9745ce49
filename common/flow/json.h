// Boost.JSON for Tether. Include this header, never <boost/json/src.hpp>: Boost.JSON is used in its
// header-only form, and its implementation is compiled exactly once, in json.cc (target
// //common/flow:json). Depending on that target is what links the implementation in.
#ifndef TETHER_COMMON_FLOW_JSON_H_
#define TETHER_COMMON_FLOW_JSON_H_

#include <boost/json.hpp>  // IWYU pragma: export

#endif  // TETHER_COMMON_FLOW_JSON_H_
