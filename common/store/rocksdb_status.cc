#include "common/store/rocksdb_status.h"

namespace tether::store {
namespace {

absl::StatusCode CodeFor(const rocksdb::Status& status) {
  using Code = rocksdb::Status::Code;
  using SubCode = rocksdb::Status::SubCode;
  switch (status.subcode()) {
    case SubCode::kNoSpace:
    case SubCode::kMemoryLimit:
    case SubCode::kSpaceLimit:
    case SubCode::kLockLimit:
      return absl::StatusCode::kResourceExhausted;
    case SubCode::kPathNotFound:
      return absl::StatusCode::kNotFound;
    default:
      break;
  }
  switch (status.code()) {
    case Code::kOk:
      return absl::StatusCode::kOk;
    case Code::kNotFound:
      return absl::StatusCode::kNotFound;
    case Code::kCorruption:
      return absl::StatusCode::kDataLoss;
    case Code::kNotSupported:
      return absl::StatusCode::kUnimplemented;
    case Code::kInvalidArgument:
      return absl::StatusCode::kInvalidArgument;
    case Code::kIOError:
    case Code::kBusy:
    case Code::kTryAgain:
    case Code::kIncomplete:
    case Code::kShutdownInProgress:
      return absl::StatusCode::kUnavailable;
    case Code::kTimedOut:
    case Code::kExpired:
      return absl::StatusCode::kDeadlineExceeded;
    case Code::kAborted:
      return absl::StatusCode::kAborted;
    case Code::kCompactionTooLarge:
      return absl::StatusCode::kResourceExhausted;
    case Code::kColumnFamilyDropped:
      return absl::StatusCode::kFailedPrecondition;
    case Code::kMergeInProgress:
      return absl::StatusCode::kInternal;
    case Code::kMaxCode:
      break;
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace

absl::Status FromRocksDb(const rocksdb::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(CodeFor(status), status.ToString());
}

}  // namespace tether::store
