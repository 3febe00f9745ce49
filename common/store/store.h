// Store: the RocksDB database behind a Tether service, one column family per record type.
//
// Callers name column families by string; a name the Store was not opened with is
// kInvalidArgument on every call, and nothing is read or written. Keys and values are bytes;
// build composite keys with KeyBuilder (common/store/key.h) so that they sort as tuples.
//
// Durability: every write goes through the write-ahead log. With WriteOptions{.sync = false}
// (the default) an acknowledged write survives a crash of this process but not of the machine;
// with {.sync = true} the WAL is fsync'ed before the call returns, so it survives power loss too.
// Use sync for anything that must not be lost, e.g. run-state transitions. Recovery after a crash
// replays the WAL up to the last complete record (RocksDB's point-in-time recovery).
//
// Thread safety: a Store is safe to use from any number of threads at once without external
// locking (RocksDB's DB is thread-safe and the column family table is immutable after Open).
// A Batch is a plain value: it is not thread-safe, use one per thread.
//
// Exclusivity: one Store per directory. Opening a directory already opened by another process,
// or by another Store in this process, is kFailedPrecondition: two writers on one database is a
// deployment error, not something to retry blindly.
#ifndef TETHER_COMMON_STORE_STORE_H_
#define TETHER_COMMON_STORE_STORE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
}  // namespace rocksdb

namespace tether::store {

struct Options {
  // Create the directory (mode 0700) and the database if they do not exist. If false, a missing
  // directory is kNotFound and a directory without a database is kInvalidArgument.
  bool create_if_missing = true;
};

struct WriteOptions {
  // fsync the write-ahead log before returning (see "Durability" above).
  bool sync = false;
};

// Puts and deletes across column families, applied atomically and in order by Store::Write:
// after a crash either every operation of the batch is there or none is. Column family names are
// checked at Write time.
class Batch {
 public:
  Batch() = default;

  void Put(std::string_view column_family, std::string_view key, std::string_view value);
  void Delete(std::string_view column_family, std::string_view key);

  // Moves every operation of `other` to the end of this batch, keeping their order; `other` is
  // left empty. Merging batches this way makes them one atomic write (GroupCommitWriter).
  void Append(Batch&& other);

  size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  void Clear() { ops_.clear(); }
  // Bytes of the column family names, keys and values: roughly what the batch adds to the WAL.
  size_t ByteSize() const;

 private:
  friend class Store;

  struct Op {
    bool is_delete;
    std::string column_family;
    std::string key;
    std::string value;
  };
  std::vector<Op> ops_;
};

class Store {
 public:
  // Called by Scan for each entry, in key order. Return false to stop early. The views are valid
  // only during the call.
  using ScanFn = std::function<bool(std::string_view key, std::string_view value)>;

  // Opens (and with options.create_if_missing, creates) the database in directory `path`, with
  // the given column families, creating those that are missing. The directory's mode is set to
  // 0700. Column families that exist on disk but are not listed stay untouched and unreachable.
  // Errors: kInvalidArgument for an empty, duplicate or empty-named column family list;
  // kFailedPrecondition if the directory is already open (see "Exclusivity"); kNotFound,
  // kPermissionDenied, ... for the directory; otherwise FromRocksDb of RocksDB's error.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path,
                                                     std::vector<std::string> column_families,
                                                     const Options& options = {});

  // Closes the database (pending writes were already in the WAL) and releases the directory.
  ~Store();

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The value stored under `key`; kNotFound if there is none.
  absl::StatusOr<std::string> Get(std::string_view column_family, std::string_view key) const;

  absl::Status Put(std::string_view column_family, std::string_view key, std::string_view value,
                   const WriteOptions& options = {});

  // Deleting an absent key succeeds.
  absl::Status Delete(std::string_view column_family, std::string_view key,
                      const WriteOptions& options = {});

  // Applies every operation of `batch` atomically, in the order they were added. If any names
  // an unknown column family, returns kInvalidArgument and writes nothing. An empty batch is OK.
  absl::Status Write(const Batch& batch, const WriteOptions& options = {});

  // Calls `fn` for every entry of `column_family` whose key starts with `prefix` and is >=
  // `start_key`, in ascending key order, until `fn` returns false. An empty `prefix` scans the
  // whole column family; an empty `start_key` starts at the first key with the prefix. Reads an
  // implicit snapshot: writes made during the scan are not seen. Returns the iterator's error,
  // if any (entries already passed to `fn` stay passed).
  absl::Status Scan(std::string_view column_family, std::string_view start_key,
                    std::string_view prefix, const ScanFn& fn) const;

  // Writes every column family's memtable to SST files and waits for it. Not needed for
  // durability (the WAL provides that); useful before backups and in tests.
  absl::Status Flush();

  // Erases from disk what was deleted or overwritten in `column_family`: a Delete or an
  // overwriting Put only adds a newer entry, and the old value stays in older SST and WAL files
  // until compaction. This flushes every column family's memtable (a WAL file is released only
  // once every column family with data in it is flushed), compacts the whole column family down
  // to the bottommost level (which drops the old values and the tombstones) and deletes the
  // obsolete SST and WAL files before returning. Afterwards no file in the directory holds a
  // value deleted or overwritten before the call, unless a Scan running at the time still reads
  // the old files (they go when it ends). Slow (several fsyncs and a rewrite of the column
  // family): call it outside locks. kInvalidArgument for an unknown column family.
  absl::Status CompactFully(std::string_view column_family);

  const std::string& path() const { return path_; }

 private:
  Store(std::string path, int lock_fd, rocksdb::DB* db,
        std::vector<rocksdb::ColumnFamilyHandle*> handles,
        absl::flat_hash_map<std::string, rocksdb::ColumnFamilyHandle*> by_name);

  absl::StatusOr<rocksdb::ColumnFamilyHandle*> Handle(std::string_view column_family) const;

  const std::string path_;
  const int lock_fd_;  // flock'ed directory descriptor: the exclusivity guarantee.
  rocksdb::DB* const db_;
  // Every handle opened (including hidden ones), destroyed before db_ is closed.
  const std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  // The column families callers may use.
  const absl::flat_hash_map<std::string, rocksdb::ColumnFamilyHandle*> by_name_;
};

}  // namespace tether::store

#endif  // TETHER_COMMON_STORE_STORE_H_
