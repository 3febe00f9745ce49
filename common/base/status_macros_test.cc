#include "common/base/status_macros.h"

#include <string>

#include "gtest/gtest.h"

namespace tether {
namespace {

absl::StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return absl::InvalidArgumentError("not positive");
  return v;
}

absl::Status Check(int v) {
  if (v == 7) return absl::FailedPreconditionError("seven");
  return absl::OkStatus();
}

absl::StatusOr<int> DoubleChecked(int v) {
  RETURN_IF_ERROR(Check(v));
  ASSIGN_OR_RETURN(int p, ParsePositive(v));
  return 2 * p;
}

TEST(StatusMacrosTest, PassesValuesThrough) { EXPECT_EQ(DoubleChecked(4).value(), 8); }

TEST(StatusMacrosTest, ReturnIfErrorPropagatesTheOriginalStatus) {
  EXPECT_EQ(DoubleChecked(7).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DoubleChecked(7).status().message(), "seven");
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesTheError) {
  EXPECT_EQ(DoubleChecked(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether
