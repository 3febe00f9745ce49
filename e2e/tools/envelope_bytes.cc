// envelope_bytes: prints the ciphertext of a connection's stored envelope, in hex, reading the
// cloud's database read-only while the cloud runs (e2e:security_test). The cloud's API never
// returns an envelope, so this is how the test learns which bytes to look for in the cloud's files
// once the connection is deleted.
//
//   envelope_bytes --db=<cloud data dir>/db --connection_id=<id>
//
// Exit 0 with the hex on stdout; 3 when the connection is not stored (e.g. deleted); 2 on errors.
// RocksDB's read-only mode takes no lock and writes nothing; its info log goes nowhere, so the
// cloud's LOG file is left alone.
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "cloud/cloud_store.h"
#include "cloud/storage.pb.h"
#include "common/base/hex.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"

ABSL_FLAG(std::string, db, "", "the cloud's RocksDB directory (<--data_dir>/db)");
ABSL_FLAG(std::string, connection_id, "", "the connection whose envelope to print");

namespace {

// RocksDB's info log, discarded.
class NullLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "envelope_bytes: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_db);
  const std::string connection_id = absl::GetFlag(FLAGS_connection_id);
  if (path.empty() || connection_id.empty()) return Fail("--db and --connection_id are required");

  rocksdb::Options options;
  options.info_log = std::make_shared<NullLogger>();
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(options, path, &names);
  if (!s.ok()) return Fail(s.ToString());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(options));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(options, path, descriptors, &handles, &raw);
  if (!s.ok()) return Fail(s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);

  int code = 3;
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    if (handle->GetName() != tether::cloud::kConnectionsCf) continue;
    std::string value;
    s = db->Get(rocksdb::ReadOptions(), handle, connection_id, &value);
    if (s.IsNotFound()) break;
    tether::cloud::storage::StoredConnection stored;
    if (!s.ok() || !stored.ParseFromString(value)) {
      code = Fail(s.ok() ? "the record does not parse" : s.ToString());
      break;
    }
    std::printf("%s\n", tether::HexEncode(stored.envelope().ciphertext()).c_str());
    code = 0;
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  db->Close().PermitUncheckedError();
  return code;
}
