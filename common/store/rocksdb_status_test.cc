#include "common/store/rocksdb_status.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tether::store {
namespace {

TEST(FromRocksDbTest, OkIsOk) { EXPECT_TRUE(FromRocksDb(rocksdb::Status::OK()).ok()); }

TEST(FromRocksDbTest, MapsEachCodeToWhatTheCallerShouldDo) {
  struct Case {
    const char* name;
    rocksdb::Status in;
    absl::StatusCode want;
  };
  const std::vector<Case> cases = {
      {"NotFound", rocksdb::Status::NotFound("k"), absl::StatusCode::kNotFound},
      {"Corruption", rocksdb::Status::Corruption("bad block"), absl::StatusCode::kDataLoss},
      {"NotSupported", rocksdb::Status::NotSupported("x"), absl::StatusCode::kUnimplemented},
      {"InvalidArgument", rocksdb::Status::InvalidArgument("x"),
       absl::StatusCode::kInvalidArgument},
      {"IOError", rocksdb::Status::IOError("disk"), absl::StatusCode::kUnavailable},
      {"IOError/NoSpace", rocksdb::Status::NoSpace("full"), absl::StatusCode::kResourceExhausted},
      {"IOError/PathNotFound", rocksdb::Status::PathNotFound("gone"), absl::StatusCode::kNotFound},
      {"Busy", rocksdb::Status::Busy("x"), absl::StatusCode::kUnavailable},
      {"TryAgain", rocksdb::Status::TryAgain("x"), absl::StatusCode::kUnavailable},
      {"Incomplete", rocksdb::Status::Incomplete("x"), absl::StatusCode::kUnavailable},
      {"ShutdownInProgress", rocksdb::Status::ShutdownInProgress("x"),
       absl::StatusCode::kUnavailable},
      {"TimedOut", rocksdb::Status::TimedOut("x"), absl::StatusCode::kDeadlineExceeded},
      {"Expired", rocksdb::Status::Expired("x"), absl::StatusCode::kDeadlineExceeded},
      {"Aborted", rocksdb::Status::Aborted("x"), absl::StatusCode::kAborted},
      {"MemoryLimit", rocksdb::Status::MemoryLimit("x"), absl::StatusCode::kResourceExhausted},
      {"ColumnFamilyDropped", rocksdb::Status::ColumnFamilyDropped("x"),
       absl::StatusCode::kFailedPrecondition},
      {"MergeInProgress", rocksdb::Status::MergeInProgress("x"), absl::StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(FromRocksDb(c.in).code(), c.want) << FromRocksDb(c.in);
  }
}

TEST(FromRocksDbTest, KeepsRocksDbsMessage) {
  const absl::Status s = FromRocksDb(rocksdb::Status::Corruption("block checksum mismatch"));
  EXPECT_NE(s.message().find("block checksum mismatch"), std::string::npos) << s;
  EXPECT_NE(s.message().find("Corruption"), std::string::npos) << s;
}

}  // namespace
}  // namespace tether::store
