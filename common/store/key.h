// Order-preserving encoding of composite keys for RocksDB (whose default comparator compares
// keys as unsigned bytes).
//
// A key is a sequence of typed segments. The encoding keeps tuple order: for two tuples with the
// same segment types, a < b (element by element, strings compared as unsigned bytes) exactly when
// Encode(a) < Encode(b) bytewise. Every segment encoding is prefix-free, so a key built from the
// first k segments of a tuple is a byte prefix of that tuple's key and of no key whose first k
// segments differ: use it as the `prefix` of Store::Scan.
//
//   uint64  8 bytes, big-endian.
//   string  the bytes, each 0x00 written as 0x00 0xFF, then the terminator 0x00 0x01.
//
// Segments carry no type tags: the reader must know the schema. For descending order on a number
// (e.g. "higher priority first") encode `~value`.
//
//   std::string key = KeyBuilder().AddUint64(priority).AddUint64(seq).AddString(run_id).Build();
//   KeyReader r(key);
//   ASSIGN_OR_RETURN(uint64_t priority, r.ReadUint64());
//   ...
//   RETURN_IF_ERROR(r.ExpectEnd());
#ifndef TETHER_COMMON_STORE_KEY_H_
#define TETHER_COMMON_STORE_KEY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tether::store {

// Appends segments to a key. Not thread-safe (a value type; use one per thread).
class KeyBuilder {
 public:
  KeyBuilder() = default;

  KeyBuilder& AddUint64(uint64_t value);
  KeyBuilder& AddString(std::string_view value);

  // The encoded key so far. The builder stays usable: more segments may follow.
  const std::string& Build() const& { return key_; }
  std::string Build() && { return std::move(key_); }

 private:
  std::string key_;
};

// Reads segments back from an encoded key, in the order they were added. Keys are input (from
// disk or a peer), so malformed bytes are kInvalidArgument naming the offset, never a crash.
// Holds a view: `key` must outlive the reader. Not thread-safe.
class KeyReader {
 public:
  explicit KeyReader(std::string_view key) : key_(key) {}

  // kInvalidArgument if fewer than 8 bytes remain.
  absl::StatusOr<uint64_t> ReadUint64();
  // kInvalidArgument if the segment has no terminator or a 0x00 is followed by anything other
  // than 0xFF (escape) or 0x01 (terminator).
  absl::StatusOr<std::string> ReadString();

  bool AtEnd() const { return pos_ == key_.size(); }
  // kInvalidArgument if bytes remain (the key has more segments than the schema).
  absl::Status ExpectEnd() const;

 private:
  std::string_view key_;
  size_t pos_ = 0;
};

}  // namespace tether::store

#endif  // TETHER_COMMON_STORE_KEY_H_
