#include "cloud/cloud_store.h"

#include "absl/strings/str_cat.h"
#include "common/base/hex.h"
#include "common/crypto/digest.h"
#include "common/store/key.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace tether::cloud {

std::vector<std::string> CloudColumnFamilies() {
  return {kUsersCf,       kUserNamesCf, kTokensCf,     kTokenIdsCf,   kMachinesCf,
          kGroupsCf,      kClustersCf,  kMembersCf,    kConnectionsCf, kFlowsCf,
          kNamesCf,       kVisibleCf,   kNoncesCf,     kRunsCf,       kActiveRunsCf,
          kRunEventsCf,   kRunsByOwnerCf, kRunRequestsCf};
}

absl::StatusOr<std::unique_ptr<store::Store>> OpenCloudStore(const std::string& dir) {
  return store::Store::Open(dir, CloudColumnFamilies());
}

absl::Status GetRecord(const store::Store& db, absl::string_view column_family,
                       absl::string_view key, google::protobuf::MessageLite* record) {
  absl::StatusOr<std::string> bytes =
      db.Get(std::string_view(column_family.data(), column_family.size()),
             std::string_view(key.data(), key.size()));
  if (!bytes.ok()) return bytes.status();
  if (!record->ParseFromString(*bytes)) {
    return absl::DataLossError(
        absl::StrCat("corrupt ", record->GetTypeName(), " record in column family ", column_family));
  }
  return absl::OkStatus();
}

std::string SerializeRecord(const google::protobuf::MessageLite& record) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    record.SerializeToCodedStream(&coded);
  }
  return out;
}

absl::StatusOr<std::string> NewId(absl::string_view prefix) {
  absl::StatusOr<std::string> bytes = crypto::RandomBytes(10);
  if (!bytes.ok()) return bytes.status();
  return absl::StrCat(prefix, HexEncode(*bytes));
}

namespace {
std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }
}  // namespace

std::string NameKey(absl::string_view kind, absl::string_view owner_user_id, absl::string_view name) {
  return store::KeyBuilder().AddString(Sv(kind)).AddString(Sv(owner_user_id)).AddString(Sv(name)).Build();
}

std::string VisibleKey(absl::string_view user_id, absl::string_view kind, absl::string_view id) {
  return store::KeyBuilder().AddString(Sv(user_id)).AddString(Sv(kind)).AddString(Sv(id)).Build();
}

std::string VisiblePrefix(absl::string_view user_id, absl::string_view kind) {
  return store::KeyBuilder().AddString(Sv(user_id)).AddString(Sv(kind)).Build();
}

std::string FlowKey(absl::string_view flow_id, uint32_t version) {
  return store::KeyBuilder().AddString(Sv(flow_id)).AddUint64(version).Build();
}

std::string FlowPrefix(absl::string_view flow_id) {
  return store::KeyBuilder().AddString(Sv(flow_id)).Build();
}

std::string RunEventKey(absl::string_view run_id, uint64_t seq) {
  return store::KeyBuilder().AddString(Sv(run_id)).AddUint64(seq).Build();
}

std::string RunEventPrefix(absl::string_view run_id) {
  return store::KeyBuilder().AddString(Sv(run_id)).Build();
}

std::string RunsByOwnerKey(absl::string_view user_id, int64_t created_at_unix_ms,
                           absl::string_view run_id) {
  return store::KeyBuilder()
      .AddString(Sv(user_id))
      .AddUint64(~static_cast<uint64_t>(created_at_unix_ms))
      .AddString(Sv(run_id))
      .Build();
}

std::string RunsByOwnerPrefix(absl::string_view user_id) {
  return store::KeyBuilder().AddString(Sv(user_id)).Build();
}

std::string RunRequestKey(absl::string_view user_id, absl::string_view request_id) {
  return store::KeyBuilder().AddString(Sv(user_id)).AddString(Sv(request_id)).Build();
}

std::string NonceKey(absl::string_view machine_id, absl::string_view nonce) {
  return store::KeyBuilder().AddString(Sv(machine_id)).AddString(Sv(nonce)).Build();
}

}  // namespace tether::cloud
