// inject_job: plays someone who can open channels on the relay (it holds a Send token, as the
// relay's operator or anyone with its keys file could) but not the cloud's signing key
// (e2e:security_test). It opens a channel to a machine's entity and sends one JobRequest that is
// valid in every other respect: addressed to the machine, not expired, credentials sealed to the
// machine's key for a real local account, and a flow that writes --marker. Only the signature is
// ours to choose (--sign):
//
//   none          no signature, the cloud's key id
//   other_key     signed with a fresh Ed25519 key, claiming the cloud's key id
//   other_key_id  signed with a fresh key under that key's own id
//   cloud         signed with --cloud_key_file, the cloud's real key (the control: it runs)
//
// Prints the agent's answer as one JSON line (ChannelMessage, proto field names) on stdout; for an
// accepted job it goes on to print the events and the JobResult. Exit 0 when an answer came, 1
// when none did, 2 on bad flags.
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/base/hex.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/envelope.h"
#include "common/crypto/key_file.h"
#include "common/crypto/sas_token.h"
#include "common/net/relay_sender.h"
#include "common/proto/job.pb.h"
#include "common/proto/signing_input.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(std::string, relay_url, "", "the relay, https://localhost:PORT");
ABSL_FLAG(std::string, ca, "", "CA certificate (PEM) of the relay");
ABSL_FLAG(std::string, relay_keys_file, "", "the relay's keys file; its first key makes the Send token");
ABSL_FLAG(std::string, machine_id, "", "the target machine (m-...); its entity is hc/machine-<id>");
ABSL_FLAG(std::string, machine_pub_b64, "", "the machine's X25519 public key, base64 (machines show --json)");
ABSL_FLAG(std::string, cloud_key_id, "", "the cloud's job-signing key id the agent pinned (hex)");
ABSL_FLAG(std::string, cloud_key_file, "", "--sign=cloud: the cloud's cloud-signing.key");
ABSL_FLAG(std::string, sign, "none", "none, other_key, other_key_id or cloud");
ABSL_FLAG(std::string, job_id, "job-injected", "the job id");
ABSL_FLAG(std::string, username, "", "the local account the job runs as");
ABSL_FLAG(std::string, password_file, "", "file holding that account's password (first line)");
ABSL_FLAG(std::string, marker, "", "the file the injected flow writes");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "inject_job: %s\n", message.c_str());
  return 2;
}

std::string Json(const tether::proto::ChannelMessage& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tether;  // NOLINT: a small tool
  absl::ParseCommandLine(argc, argv);
  const std::string machine_id = absl::GetFlag(FLAGS_machine_id);
  const std::string mode = absl::GetFlag(FLAGS_sign);
  if (absl::GetFlag(FLAGS_relay_url).empty() || machine_id.empty() ||
      absl::GetFlag(FLAGS_cloud_key_id).empty() || absl::GetFlag(FLAGS_marker).empty()) {
    return Fail("--relay_url, --machine_id, --cloud_key_id and --marker are required");
  }
  auto machine_pub = crypto::Base64Decode(absl::GetFlag(FLAGS_machine_pub_b64));
  if (!machine_pub.ok()) return Fail("--machine_pub_b64 is not base64");

  std::string password;
  {
    std::ifstream in(absl::GetFlag(FLAGS_password_file));
    if (!std::getline(in, password)) return Fail("cannot read --password_file");
  }
  const std::string connection_id = "conn-injected-0000000001";
  proto::JobRequest job;
  job.set_job_id(absl::GetFlag(FLAGS_job_id));
  job.set_run_id("run-injected");
  job.mutable_target()->set_machine_id(machine_id);
  job.set_flow_definition_json(absl::StrCat(
      R"({"name":"injected","actions":[{"action":"File.WriteText","path":")",
      absl::GetFlag(FLAGS_marker), R"(","text":"injected\n","append":true}]})"));
  auto sealed = crypto::SealCredentials(
      *machine_pub, connection_id,
      {absl::GetFlag(FLAGS_username), crypto::SecretBytes(password)});
  if (!sealed.ok()) return Fail(sealed.status().ToString());
  *job.mutable_credentials() = *sealed;
  job.set_connection_id(connection_id);
  job.set_username(absl::GetFlag(FLAGS_username));
  job.set_mode(proto::RUN_MODE_UNATTENDED);
  job.set_timeout_ms(30000);
  job.set_issued_at_unix_ms(absl::ToUnixMillis(WallNow()));
  job.set_expires_at_unix_ms(absl::ToUnixMillis(WallNow() + absl::Minutes(5)));

  proto::ChannelMessage message;
  proto::SignedJobRequest* signed_job = message.mutable_job_request();
  signed_job->set_job_request(job.SerializeAsString());
  signed_job->set_key_id(absl::GetFlag(FLAGS_cloud_key_id));
  const std::string signing_input = proto::JobRequestSigningInput(signed_job->job_request());
  if (mode == "other_key" || mode == "other_key_id") {
    auto forger = crypto::GenerateEd25519KeyPair();
    if (!forger.ok()) return Fail(forger.status().ToString());
    signed_job->set_signature(*crypto::Ed25519Sign(forger->private_key, signing_input));
    if (mode == "other_key_id") signed_job->set_key_id(HexEncode(crypto::KeyId(forger->public_key)));
  } else if (mode == "cloud") {
    auto key = crypto::ReadSecretFile(absl::GetFlag(FLAGS_cloud_key_file));
    if (!key.ok()) return Fail(key.status().ToString());
    signed_job->set_signature(*crypto::Ed25519Sign(*key, signing_input));
  } else if (mode != "none") {
    return Fail("--sign must be none, other_key, other_key_id or cloud");
  }

  auto keys_text = crypto::ReadSecretFile(absl::GetFlag(FLAGS_relay_keys_file));
  if (!keys_text.ok()) return Fail(keys_text.status().ToString());
  auto ring = crypto::SasKeyRing::Parse(keys_text->view());
  if (!ring.ok() || ring->size() == 0) return Fail("no key in --relay_keys_file");
  const std::string entity = absl::StrCat("machine-", machine_id);
  net::SenderOptions sender;
  sender.relay_url = absl::GetFlag(FLAGS_relay_url);
  sender.ca_file = absl::GetFlag(FLAGS_ca);
  sender.entity = entity;
  sender.proxy = net::ProxyConfig::Direct();
  sender.token = crypto::CreateSasToken(absl::StrCat("/$hc/", entity), ring->keys()[0].name,
                                        ring->keys()[0].key, absl::ToUnixSeconds(WallNow() + absl::Minutes(5)));
  auto channel = net::RelaySender::Connect(sender);
  if (!channel.ok()) {
    std::fprintf(stderr, "inject_job: connect: %s\n", channel.status().ToString().c_str());
    return 1;
  }
  if (absl::Status sent = (*channel)->Send(message.SerializeAsString()); !sent.ok()) {
    std::fprintf(stderr, "inject_job: send: %s\n", sent.ToString().c_str());
    return 1;
  }
  // The answer, then (for an accepted job) everything up to the result.
  bool answered = false;
  while (true) {
    auto reply = (*channel)->Receive(absl::Seconds(30));
    if (!reply.ok()) break;
    proto::ChannelMessage answer;
    if (!answer.ParseFromString(*reply)) break;
    answered = true;
    std::printf("%s\n", Json(answer).c_str());
    std::fflush(stdout);
    if (!answer.has_job_accepted() && !answer.has_job_event()) break;
    if (answer.has_job_accepted() && answer.job_accepted().duplicate()) break;
  }
  (*channel)->Close().IgnoreError();
  return answered ? 0 : 1;
}
