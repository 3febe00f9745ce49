#include "cloud/authenticator.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cloud/cloud_store.h"
#include "cloud/storage.pb.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/proto/signing_input.h"
#include "common/store/key.h"

namespace tether::cloud {
namespace {

constexpr size_t kNonceSize = 16;

std::string Base64Url(absl::string_view bytes) {
  std::string b64 = crypto::Base64Encode(bytes);
  std::string out;
  for (char c : b64) {
    if (c == '+') out.push_back('-');
    else if (c == '/') out.push_back('_');
    else if (c != '=') out.push_back(c);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(store::Store* db,
                                                                     absl::Duration window) {
  std::unique_ptr<Authenticator> auth(new Authenticator(db, window));
  const int64_t horizon = absl::ToUnixMillis(WallNow() - window);
  store::Batch expired;
  absl::MutexLock lock(&auth->mu_);
  RETURN_IF_ERROR(db->Scan(kNoncesCf, "", "", [&](std::string_view key, std::string_view value) {
    int64_t ts = 0;
    if (value.size() == 8) {
      uint64_t v = 0;
      for (unsigned char c : value) v = (v << 8) | c;
      ts = static_cast<int64_t>(v);
    }
    if (ts < horizon) {
      expired.Delete(kNoncesCf, key);
    } else {
      auth->seen_.insert(std::string(key));
      auth->expiry_.emplace_back(ts, std::string(key));
    }
    return true;
  }));
  std::sort(auth->expiry_.begin(), auth->expiry_.end());
  RETURN_IF_ERROR(db->Write(expired));
  return auth;
}

absl::StatusOr<std::pair<std::string, std::string>> Authenticator::NewTokenSecret() {
  ASSIGN_OR_RETURN(std::string random, crypto::RandomBytes(32));
  std::string secret = absl::StrCat(kApiTokenPrefix, Base64Url(random));
  crypto::Cleanse(random.data(), random.size());
  std::string hash = crypto::Sha256(secret);
  return std::make_pair(std::move(secret), std::move(hash));
}

absl::StatusOr<Caller> Authenticator::AuthenticateUser(absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError("missing bearer token (metadata \"authorization: Bearer ...\")");
  }
  if (!absl::StartsWith(authorization, "Bearer ")) {
    return absl::UnauthenticatedError("authorization is not \"Bearer <token>\"");
  }
  absl::string_view secret = authorization.substr(7);
  if (!absl::StartsWith(secret, kApiTokenPrefix) || secret.size() > 256) {
    return absl::UnauthenticatedError("malformed API token");
  }
  const std::string hash = crypto::Sha256(secret);
  storage::StoredToken stored;
  absl::Status status = GetRecord(*db_, kTokensCf, hash, &stored);
  if (absl::IsNotFound(status)) return absl::UnauthenticatedError("unknown API token");
  RETURN_IF_ERROR(status);
  if (stored.token().revoked_at_unix_ms() != 0) {
    return absl::UnauthenticatedError("API token revoked");
  }
  Caller caller;
  status = GetRecord(*db_, kUsersCf, stored.token().user_id(), &caller.user);
  if (absl::IsNotFound(status)) return absl::UnauthenticatedError("API token of a deleted user");
  RETURN_IF_ERROR(status);
  caller.token_id = stored.token().token_id();
  return caller;
}

absl::StatusOr<SignedCaller> Authenticator::AuthenticateSigned(
    absl::string_view full_method, const google::protobuf::Message& request,
    const proto::MachineAuth& auth) {
  if (auth.machine_id().empty()) return absl::UnauthenticatedError("auth.machine_id is empty");
  if (auth.nonce().size() != kNonceSize) {
    return absl::UnauthenticatedError(absl::StrCat("auth.nonce must be ", kNonceSize, " bytes"));
  }
  if (auth.signature().size() != crypto::kEd25519SignatureSize) {
    return absl::UnauthenticatedError("auth.signature must be 64 bytes");
  }
  const int64_t now_ms = absl::ToUnixMillis(WallNow());
  const int64_t window_ms = absl::ToInt64Milliseconds(window_);
  if (std::llabs(now_ms - auth.timestamp_unix_ms()) > window_ms) {
    return absl::UnauthenticatedError(absl::StrCat(
        "stale timestamp: signed ", (now_ms - auth.timestamp_unix_ms()) / 1000,
        " s from the cloud's clock (allowed ", window_ms / 1000, " s); check the machine's clock"));
  }

  SignedCaller caller;
  std::string public_key;
  proto::Machine machine;
  absl::Status status = GetRecord(*db_, kMachinesCf, auth.machine_id(), &machine);
  if (status.ok()) {
    caller.kind = SignedCaller::Kind::kMachine;
    caller.owner_user_id = machine.owner_user_id();
    public_key = machine.ed25519_pub();
  } else if (absl::IsNotFound(status)) {
    storage::StoredMemberIndex index;
    status = GetRecord(*db_, kMembersCf, auth.machine_id(), &index);
    if (absl::IsNotFound(status)) {
      return absl::UnauthenticatedError(absl::StrCat("unknown machine \"", auth.machine_id(), "\""));
    }
    RETURN_IF_ERROR(status);
    proto::GatewayCluster cluster;
    RETURN_IF_ERROR(GetRecord(*db_, kClustersCf, index.cluster_id(), &cluster));
    for (const proto::ClusterMember& member : cluster.members()) {
      if (member.member_id() == auth.machine_id()) public_key = member.ed25519_pub();
    }
    if (public_key.empty()) {
      return absl::UnauthenticatedError(absl::StrCat("unknown member \"", auth.machine_id(), "\""));
    }
    caller.kind = SignedCaller::Kind::kClusterMember;
    caller.cluster_id = cluster.cluster_id();
    caller.owner_user_id = cluster.owner_user_id();
  } else {
    return status;
  }
  caller.id = auth.machine_id();

  ASSIGN_OR_RETURN(std::string input, proto::MachineAuthSigningInput(
                                          std::string_view(full_method.data(), full_method.size()),
                                          request));
  if (!crypto::Ed25519Verify(public_key, input, auth.signature()).ok()) {
    return absl::UnauthenticatedError("bad signature");
  }
  RETURN_IF_ERROR(RecordNonce(auth.machine_id(), auth.nonce(), auth.timestamp_unix_ms()));
  return caller;
}

absl::Status Authenticator::RecordNonce(const std::string& machine_id, const std::string& nonce,
                                        int64_t timestamp_ms) {
  const std::string key = NonceKey(machine_id, nonce);
  absl::MutexLock lock(&mu_);
  // Forget what fell out of the window (a replay of those fails the timestamp check).
  const int64_t horizon = absl::ToUnixMillis(WallNow() - window_);
  store::Batch batch;
  while (!expiry_.empty() && expiry_.front().first < horizon) {
    seen_.erase(expiry_.front().second);
    batch.Delete(kNoncesCf, expiry_.front().second);
    expiry_.pop_front();
  }
  if (seen_.contains(key)) return absl::UnauthenticatedError("replayed request (nonce already used)");
  std::string value(8, '\0');
  for (int i = 0; i < 8; ++i) {
    value[7 - i] = static_cast<char>(static_cast<uint64_t>(timestamp_ms) >> (8 * i));
  }
  batch.Put(kNoncesCf, key, value);
  RETURN_IF_ERROR(db_->Write(batch, store::WriteOptions{.sync = true}));
  seen_.insert(key);
  auto pos = std::upper_bound(expiry_.begin(), expiry_.end(), std::make_pair(timestamp_ms, key));
  expiry_.insert(pos, std::make_pair(timestamp_ms, key));
  return absl::OkStatus();
}

}  // namespace tether::cloud
