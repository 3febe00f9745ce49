#include "common/store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/store/rocksdb_status.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace tether::store {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// Debian's abseil has its own absl::string_view (not an alias of std::string_view).
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

rocksdb::WriteOptions ToRocksDb(const WriteOptions& options) {
  rocksdb::WriteOptions out;
  out.sync = options.sync;
  return out;
}

// Prefixes a RocksDB error with what we were doing.
absl::Status WithContext(const rocksdb::Status& status, std::string_view context) {
  absl::Status s = FromRocksDb(status);
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(Absl(context), ": ", s.message()));
}

absl::Status ValidateColumnFamilies(const std::vector<std::string>& column_families) {
  if (column_families.empty()) {
    return absl::InvalidArgumentError("a Store needs at least one column family");
  }
  absl::flat_hash_set<std::string_view> seen;
  for (const std::string& name : column_families) {
    if (name.empty()) return absl::InvalidArgumentError("empty column family name");
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate column family '", name, "'"));
    }
  }
  return absl::OkStatus();
}

// Creates `path` if asked, makes it 0700 and takes an exclusive flock on it. flock (unlike the
// fcntl lock RocksDB takes on its LOCK file) belongs to the open file description, so it also
// refuses a second Store on the same directory within this process, which RocksDB would report as
// an opaque I/O error. Returns the locked descriptor.
absl::StatusOr<int> LockDirectory(const std::string& path, bool create_if_missing) {
  if (create_if_missing && ::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("creating database directory ", path));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening database directory ", path));
  if (::fchmod(fd, 0700) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("setting mode 0700 on ", path));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database directory ", path,
          " is already open (by another process, or by another Store in this process)"));
    }
    return absl::ErrnoToStatus(err, absl::StrCat("locking database directory ", path));
  }
  return fd;
}

}  // namespace

void Batch::Put(std::string_view column_family, std::string_view key, std::string_view value) {
  ops_.push_back(Op{false, std::string(column_family), std::string(key), std::string(value)});
}

void Batch::Delete(std::string_view column_family, std::string_view key) {
  ops_.push_back(Op{true, std::string(column_family), std::string(key), std::string()});
}

void Batch::Append(Batch&& other) {
  if (ops_.empty()) {
    ops_ = std::move(other.ops_);
  } else {
    ops_.insert(ops_.end(), std::make_move_iterator(other.ops_.begin()),
                std::make_move_iterator(other.ops_.end()));
  }
  other.ops_.clear();
}

size_t Batch::ByteSize() const {
  size_t bytes = 0;
  for (const Op& op : ops_) bytes += op.column_family.size() + op.key.size() + op.value.size();
  return bytes;
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path,
                                                   std::vector<std::string> column_families,
                                                   const Options& options) {
  RETURN_IF_ERROR(ValidateColumnFamilies(column_families));
  ASSIGN_OR_RETURN(const int lock_fd, LockDirectory(path, options.create_if_missing));

  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  // Obsolete WAL files are deleted at once rather than archived (CompactFully relies on it: a
  // deleted value must not linger in an archived log). These are RocksDB's defaults, stated here
  // because the guarantee depends on them.
  db_options.WAL_ttl_seconds = 0;
  db_options.WAL_size_limit_MB = 0;
  db_options.recycle_log_file_num = 0;

  // RocksDB must open every column family on disk, plus "default". Those the caller did not ask
  // for are opened but not exposed, so dropping a name from the list never loses data.
  std::vector<std::string> to_open = column_families;
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, path, &existing).ok()) {
    for (std::string& name : existing) to_open.push_back(std::move(name));
  }
  to_open.push_back(rocksdb::kDefaultColumnFamilyName);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  absl::flat_hash_set<std::string> seen;
  for (const std::string& name : to_open) {
    if (seen.insert(name).second) {
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(db_options));
    }
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  const rocksdb::Status opened = rocksdb::DB::Open(db_options, path, descriptors, &handles, &db);
  if (!opened.ok()) {
    ::close(lock_fd);
    return WithContext(opened, absl::StrCat("opening database ", path));
  }

  absl::flat_hash_map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    for (const std::string& name : column_families) {
      if (handle->GetName() == name) by_name.emplace(name, handle);
    }
  }
  return std::unique_ptr<Store>(
      new Store(path, lock_fd, db, std::move(handles), std::move(by_name)));
}

Store::Store(std::string path, int lock_fd, rocksdb::DB* db,
             std::vector<rocksdb::ColumnFamilyHandle*> handles,
             absl::flat_hash_map<std::string, rocksdb::ColumnFamilyHandle*> by_name)
    : path_(std::move(path)),
      lock_fd_(lock_fd),
      db_(db),
      handles_(std::move(handles)),
      by_name_(std::move(by_name)) {}

Store::~Store() {
  // Nothing useful can be done with a failure here: the WAL already holds every acknowledged
  // write, and the next Open recovers from it.
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
  delete db_;
  ::close(lock_fd_);  // Releases the directory only once RocksDB has let go of it.
}

absl::StatusOr<rocksdb::ColumnFamilyHandle*> Store::Handle(std::string_view column_family) const {
  auto it = by_name_.find(Absl(column_family));
  if (it == by_name_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown column family '", Absl(column_family), "' in store ", path_));
  }
  return it->second;
}

absl::StatusOr<std::string> Store::Get(std::string_view column_family, std::string_view key) const {
  ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * handle, Handle(column_family));
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handle, ToSlice(key), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("no such key in column family '", Absl(column_family), "'"));
  }
  RETURN_IF_ERROR(
      WithContext(s, absl::StrCat("reading column family '", Absl(column_family), "'")));
  return value;
}

absl::Status Store::Put(std::string_view column_family, std::string_view key,
                        std::string_view value, const WriteOptions& options) {
  ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * handle, Handle(column_family));
  return WithContext(db_->Put(ToRocksDb(options), handle, ToSlice(key), ToSlice(value)),
                     absl::StrCat("writing column family '", Absl(column_family), "'"));
}

absl::Status Store::Delete(std::string_view column_family, std::string_view key,
                           const WriteOptions& options) {
  ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * handle, Handle(column_family));
  return WithContext(db_->Delete(ToRocksDb(options), handle, ToSlice(key)),
                     absl::StrCat("deleting from column family '", Absl(column_family), "'"));
}

absl::Status Store::Write(const Batch& batch, const WriteOptions& options) {
  // Resolve every name before touching the database, so a bad batch writes nothing.
  rocksdb::WriteBatch write_batch;
  for (const Batch::Op& op : batch.ops_) {
    ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * handle, Handle(op.column_family));
    const rocksdb::Status s = op.is_delete
                                  ? write_batch.Delete(handle, ToSlice(op.key))
                                  : write_batch.Put(handle, ToSlice(op.key), ToSlice(op.value));
    RETURN_IF_ERROR(WithContext(s, "building write batch"));
  }
  if (write_batch.Count() == 0) return absl::OkStatus();
  return WithContext(db_->Write(ToRocksDb(options), &write_batch), "writing batch");
}

absl::Status Store::Scan(std::string_view column_family, std::string_view start_key,
                         std::string_view prefix, const ScanFn& fn) const {
  ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * handle, Handle(column_family));

  // The smallest key greater than every key with `prefix` (none if prefix is all 0xff): lets
  // RocksDB stop at the end of the prefix instead of reading the next block.
  std::string upper = std::string(prefix);
  while (!upper.empty() && upper.back() == '\xff') upper.pop_back();
  if (!upper.empty()) upper.back() = static_cast<char>(upper.back() + 1);
  const rocksdb::Slice upper_slice(upper);

  rocksdb::ReadOptions read_options;
  if (!upper.empty()) read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, handle));
  for (it->Seek(ToSlice(std::max(start_key, prefix))); it->Valid(); it->Next()) {
    const std::string_view key = ToView(it->key());
    if (!key.starts_with(prefix)) break;
    if (!fn(key, ToView(it->value()))) break;
  }
  return WithContext(it->status(),
                     absl::StrCat("scanning column family '", Absl(column_family), "'"));
}

absl::Status Store::Flush() {
  return WithContext(db_->Flush(rocksdb::FlushOptions(), handles_), "flushing");
}

absl::Status Store::CompactFully(std::string_view column_family) {
  ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * handle, Handle(column_family));
  const std::string what = absl::StrCat("compacting column family '", Absl(column_family), "'");
  // Every memtable, not only this column family's: the WAL is shared, and a log file is kept
  // while any column family still has unflushed data in it.
  RETURN_IF_ERROR(WithContext(db_->Flush(rocksdb::FlushOptions(), handles_), what));
  rocksdb::CompactRangeOptions options;
  // The bottommost level too: that is where old values and tombstones are finally dropped.
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  RETURN_IF_ERROR(WithContext(db_->CompactRange(options, handle, nullptr, nullptr), what));
  // The flush and compaction jobs delete the files they made obsolete from a background thread,
  // possibly after the calls above returned. Re-enabling deletions with force runs a full scan
  // for obsolete files and deletes them in this thread, so they are gone when we return.
  RETURN_IF_ERROR(WithContext(db_->DisableFileDeletions(), what));
  return WithContext(db_->EnableFileDeletions(/*force=*/true), what);
}

}  // namespace tether::store
