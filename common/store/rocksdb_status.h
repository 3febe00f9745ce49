// The one adapter from rocksdb::Status to absl::Status. RocksDB types stay inside
// //common/store: callers of Store only ever see absl::Status.
#ifndef TETHER_COMMON_STORE_ROCKSDB_STATUS_H_
#define TETHER_COMMON_STORE_ROCKSDB_STATUS_H_

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace tether::store {

// Maps a RocksDB status to the absl code that tells the caller what to do, keeping RocksDB's
// text (which names its own code, e.g. "IO error: ...") as the message:
//
//   NotFound, IOError(PathNotFound)           kNotFound
//   Corruption                                kDataLoss
//   InvalidArgument                           kInvalidArgument
//   NotSupported                              kUnimplemented
//   IOError(NoSpace), *(MemoryLimit|SpaceLimit|LockLimit), CompactionTooLarge
//                                             kResourceExhausted
//   IOError (other), Busy, TryAgain, Incomplete, ShutdownInProgress
//                                             kUnavailable (retry may succeed)
//   TimedOut, Expired                         kDeadlineExceeded
//   Aborted                                   kAborted
//   ColumnFamilyDropped                       kFailedPrecondition
//   MergeInProgress                           kInternal
//   anything else                             kUnknown
absl::Status FromRocksDb(const rocksdb::Status& status);

}  // namespace tether::store

#endif  // TETHER_COMMON_STORE_ROCKSDB_STATUS_H_
