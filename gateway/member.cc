#include "gateway/member.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <deque>
#include <map>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/base/log.h"
#include "common/base/service_main.h"
#include "common/base/status_macros.h"
#include "common/client/cloud_client.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/envelope.h"
#include "common/crypto/key_file.h"
#include "common/crypto/sas_token.h"
#include "common/net/relay_listener.h"
#include "common/net/relay_sender.h"
#include "common/proto/gateway.grpc.pb.h"
#include "common/proto/job.pb.h"
#include "common/proto/signing_input.h"
#include "grpcpp/grpcpp.h"
#include "relay/relay_context.h"
#include "relay/relay_server.h"

namespace tether::gateway {
namespace {

constexpr absl::Duration kAuthWindow = absl::Minutes(5);
constexpr absl::Duration kLocalTokenTtl = absl::Hours(1);
constexpr char kAgentKeyName[] = "agents";
constexpr char kMemberKeyName[] = "member";

absl::StatusOr<std::pair<std::string, uint16_t>> HostPort(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", listen, "\" is not HOST:PORT"));
  }
  return std::make_pair(listen.substr(0, colon), static_cast<uint16_t>(port));
}

std::string RelayName(absl::string_view entity) {
  absl::ConsumePrefix(&entity, "hc/");
  return std::string(entity);
}

proto::ChannelMessage Rejected(const std::string& job_id, proto::JobRejectCode code, absl::string_view why) {
  proto::ChannelMessage message;
  message.mutable_job_rejected()->set_job_id(job_id);
  message.mutable_job_rejected()->set_code(code);
  message.mutable_job_rejected()->set_reason(std::string(why));
  return message;
}

}  // namespace

struct GatewayMember::Impl {
  MemberOptions options;
  crypto::SasKey agent_key;   // Listen on the local relay
  crypto::SasKey member_key;  // Send on the local relay
  std::unique_ptr<relay::RelayServer> local_relay;
  std::unique_ptr<grpc::Server> service;
  std::unique_ptr<grpc::Service> service_impl;
  std::unique_ptr<client::CloudClient> cloud;
  std::unique_ptr<net::RelayListener> cloud_listener;
  std::string advertised_relay_url;
  uint16_t service_port = 0;

  absl::Mutex mu;
  std::map<std::string, proto::Machine> machines ABSL_GUARDED_BY(mu);  // agents behind the cluster
  absl::Time machines_fetched ABSL_GUARDED_BY(mu) = absl::InfinitePast();  // last refresh on a miss
  std::set<std::string> nonces ABSL_GUARDED_BY(mu);
  std::map<std::string, std::string> job_agent ABSL_GUARDED_BY(mu);  // job id -> machine id
  size_t next_agent ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::thread> threads ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  absl::CondVar stop_cv;  // wakes the presence reporter when stopping

  // Records (synced) that `job_id` goes to `machine_id` before it is sent there.
  absl::Status RecordForward(const std::string& job_id, const std::string& machine_id);
  absl::Status LoadForwards();

  // The machines behind the cluster, from the cloud (refreshed at most every 2 s on a miss).
  absl::StatusOr<proto::Machine> Machine(const std::string& machine_id, bool refresh);
  std::vector<proto::Machine> Machines();
  // Fetches the machines behind the cluster and, in the same signed call, reports which of them
  // listen on the local relay now.
  absl::Status RefreshMachines();
  // Calls RefreshMachines every presence_report_interval until Stop.
  void ReportPresence();

  absl::StatusOr<proto::ListenToken> AgentToken(const proto::GetListenTokenRequest& request);
  std::string LocalSendToken(const std::string& entity) const;
  void OnCloudChannel(std::shared_ptr<net::ListenerChannel> channel);
  void Bridge(std::shared_ptr<net::ListenerChannel> cloud_channel,
              std::shared_ptr<std::deque<std::string>> inbox, std::shared_ptr<absl::Mutex> inbox_mu,
              std::shared_ptr<bool> closed);
};

absl::Status GatewayMember::Impl::RecordForward(const std::string& job_id,
                                                const std::string& machine_id) {
  {
    absl::MutexLock lock(&mu);
    job_agent[job_id] = machine_id;
  }
  if (options.state_dir.empty()) return absl::OkStatus();
  const std::string path = absl::StrCat(options.state_dir, "/forwarded-jobs");
  const std::string line = absl::StrCat(job_id, " ", machine_id, "\n");
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", path));
  const bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  close(fd);
  return ok ? absl::OkStatus() : absl::InternalError(absl::StrCat("cannot write ", path));
}

absl::Status GatewayMember::Impl::LoadForwards() {
  if (options.state_dir.empty()) return absl::OkStatus();
  std::ifstream in(absl::StrCat(options.state_dir, "/forwarded-jobs"));
  std::string job_id, machine_id;
  absl::MutexLock lock(&mu);
  while (in >> job_id >> machine_id) job_agent[job_id] = machine_id;  // the last line wins
  return absl::OkStatus();
}

absl::Status GatewayMember::Impl::RefreshMachines() {
  proto::ListClusterMachinesRequest request;
  {
    absl::MutexLock lock(&mu);
    for (const auto& [id, machine] : machines) {
      if (!local_relay->context().registry.ListenerIds(RelayName(machine.entity())).empty()) {
        request.add_listening_machine_ids(id);
      }
    }
  }
  RETURN_IF_ERROR(auth::SignMachineAuth("/tether.proto.ClusterService/ListClusterMachines",
                                        options.identity.member_id(), options.member_signing_key,
                                        WallNow(), &request));
  proto::ListMachinesResponse response;
  RETURN_IF_ERROR(cloud->Unary("list cluster machines", [&](grpc::ClientContext* context) {
    return cloud->clusters()->ListClusterMachines(context, request, &response);
  }));
  absl::MutexLock lock(&mu);
  machines.clear();
  for (const proto::Machine& machine : response.machines()) machines[machine.machine_id()] = machine;
  return absl::OkStatus();
}

void GatewayMember::Impl::ReportPresence() {
  absl::Status last = absl::OkStatus();
  while (true) {
    {
      absl::MutexLock lock(&mu);
      const absl::Time until = absl::Now() + options.presence_report_interval;
      while (!stopping && absl::Now() < until) stop_cv.WaitWithDeadline(&mu, until);
      if (stopping) return;
    }
    absl::Status status = RefreshMachines();
    if (!status.ok() && last.ok()) {  // once per outage, not every interval
      LogWarning("gateway_presence_report_failed", {{"error", status.ToString()}});
    }
    last = status;
  }
}

absl::StatusOr<proto::Machine> GatewayMember::Impl::Machine(const std::string& machine_id, bool refresh) {
  bool stale;
  {
    absl::MutexLock lock(&mu);
    auto it = machines.find(machine_id);
    if (it != machines.end()) return it->second;
    // An unknown id asks the cloud again (a newly registered agent), at most 4 times a second,
    // so a stream of unknown agents cannot turn into a stream of cloud calls.
    stale = absl::Now() - machines_fetched > absl::Milliseconds(250);
    if (stale && refresh) machines_fetched = absl::Now();
  }
  if (refresh && stale) RETURN_IF_ERROR(RefreshMachines());
  absl::MutexLock lock(&mu);
  auto it = machines.find(machine_id);
  if (it == machines.end()) {
    return absl::UnauthenticatedError(
        absl::StrCat("machine \"", machine_id, "\" is not registered behind this cluster"));
  }
  return it->second;
}

std::vector<proto::Machine> GatewayMember::Impl::Machines() {
  absl::MutexLock lock(&mu);
  std::vector<proto::Machine> all;
  for (const auto& [id, machine] : machines) all.push_back(machine);
  // Rotate, so jobs spread over the agents.
  if (!all.empty()) std::rotate(all.begin(), all.begin() + (next_agent++ % all.size()), all.end());
  return all;
}

absl::StatusOr<proto::ListenToken> GatewayMember::Impl::AgentToken(
    const proto::GetListenTokenRequest& request) {
  const proto::MachineAuth& auth = request.auth();
  const int64_t now_ms = absl::ToUnixMillis(WallNow());
  if (auth.nonce().size() != 16 || auth.signature().size() != crypto::kEd25519SignatureSize) {
    return absl::UnauthenticatedError("malformed auth");
  }
  if (std::llabs(now_ms - auth.timestamp_unix_ms()) > absl::ToInt64Milliseconds(kAuthWindow)) {
    return absl::UnauthenticatedError("stale timestamp; check the machine's clock");
  }
  ASSIGN_OR_RETURN(proto::Machine machine, Machine(auth.machine_id(), /*refresh=*/true));
  ASSIGN_OR_RETURN(std::string input, proto::MachineAuthSigningInput(
                                          "/tether.proto.GatewayService/GetAgentListenToken", request));
  if (!crypto::Ed25519Verify(machine.ed25519_pub(), input, auth.signature()).ok()) {
    return absl::UnauthenticatedError("bad signature");
  }
  {
    absl::MutexLock lock(&mu);
    if (!nonces.insert(absl::StrCat(auth.machine_id(), "/", auth.nonce())).second) {
      return absl::UnauthenticatedError("replayed request (nonce already used)");
    }
  }
  const absl::Time expiry = WallNow() + kLocalTokenTtl;
  proto::ListenToken token;
  token.set_token(crypto::CreateSasToken(absl::StrCat("/$", machine.entity()), agent_key.name,
                                         agent_key.key, absl::ToUnixSeconds(expiry)));
  token.set_expires_at_unix_ms(absl::ToUnixSeconds(expiry) * 1000);
  token.set_relay_endpoint(advertised_relay_url);
  token.set_entity(machine.entity());
  LogInfo("gateway_agent_token", {{"machine_id", machine.machine_id()}});
  return token;
}

std::string GatewayMember::Impl::LocalSendToken(const std::string& entity) const {
  return crypto::CreateSasToken(absl::StrCat("/$", entity), member_key.name, member_key.key,
                                absl::ToUnixSeconds(WallNow() + absl::Minutes(10)));
}

namespace {

class GatewayServiceImpl final : public proto::GatewayService::Service {
 public:
  explicit GatewayServiceImpl(GatewayMember::Impl* impl) : impl_(impl) {}
  grpc::Status GetAgentListenToken(grpc::ServerContext*, const proto::GetListenTokenRequest* request,
                                   proto::ListenToken* response) override {
    absl::StatusOr<proto::ListenToken> token = impl_->AgentToken(*request);
    if (!token.ok()) {
      LogWarning("gateway_agent_refused", {{"machine_id", request->auth().machine_id()},
                                           {"error", std::string(token.status().message())}});
      return grpc::Status(static_cast<grpc::StatusCode>(token.status().code()),
                          std::string(token.status().message()));
    }
    *response = *std::move(token);
    return grpc::Status::OK;
  }

 private:
  GatewayMember::Impl* const impl_;
};

}  // namespace

void GatewayMember::Impl::OnCloudChannel(std::shared_ptr<net::ListenerChannel> channel) {
  // Messages are handled on a thread per cloud channel: opening a local channel blocks.
  auto inbox = std::make_shared<std::deque<std::string>>();
  auto inbox_mu = std::make_shared<absl::Mutex>();
  auto closed = std::make_shared<bool>(false);
  net::ListenerChannel::Handlers handlers;
  handlers.on_data = [inbox, inbox_mu](std::string payload) {
    absl::MutexLock lock(inbox_mu.get());
    inbox->push_back(std::move(payload));
  };
  handlers.on_close = [inbox_mu, closed](uint32_t, std::string) {
    absl::MutexLock lock(inbox_mu.get());
    *closed = true;
  };
  if (!channel->Accept(std::move(handlers)).ok()) return;
  absl::MutexLock lock(&mu);
  if (stopping) return;
  threads.emplace_back([this, channel, inbox, inbox_mu, closed] { Bridge(channel, inbox, inbox_mu, closed); });
}

void GatewayMember::Impl::Bridge(std::shared_ptr<net::ListenerChannel> cloud_channel,
                                 std::shared_ptr<std::deque<std::string>> inbox,
                                 std::shared_ptr<absl::Mutex> inbox_mu, std::shared_ptr<bool> closed) {
  std::unique_ptr<net::SenderChannel> agent;  // the local agent this cloud channel is bridged to
  std::string agent_id;
  std::atomic<bool> done{false};
  std::thread pump;
  auto reply = [&](const proto::ChannelMessage& message) {
    cloud_channel->Send(message.SerializeAsString()).IgnoreError();
  };
  auto connect = [&](const proto::Machine& machine) -> absl::Status {
    if (pump.joinable()) {
      done = true;
      if (agent != nullptr) agent->Close().IgnoreError();
      pump.join();
      done = false;
    }
    agent.reset();
    net::SenderOptions sender;
    sender.relay_url = absl::StrCat(options.insecure ? "http" : "https", "://127.0.0.1:", local_relay->port());
    sender.ca_file = options.local_ca_file.empty() ? options.tls_cert_file : options.local_ca_file;
    sender.entity = RelayName(machine.entity());
    sender.token = LocalSendToken(machine.entity());
    sender.handshake_timeout = absl::Seconds(10);
    ASSIGN_OR_RETURN(agent, net::RelaySender::Connect(sender));
    agent_id = machine.machine_id();
    return absl::OkStatus();
  };
  // Agent -> cloud: everything the agent says goes back unchanged.
  auto start_pump = [&] {
    net::SenderChannel* local = agent.get();
    pump = std::thread([this, local, cloud_channel, &done, id = agent_id] {
      while (!done) {
        absl::StatusOr<std::string> bytes = local->Receive(absl::Milliseconds(250));
        if (absl::IsDeadlineExceeded(bytes.status())) continue;
        if (!bytes.ok()) {
          if (!done) cloud_channel->Close(1011, "local agent gone").IgnoreError();
          return;
        }
        proto::ChannelMessage message;
        if (message.ParseFromString(*bytes) && message.has_job_accepted()) {
          absl::MutexLock lock(&mu);
          job_agent[message.job_accepted().job_id()] = id;
        }
        cloud_channel->Send(*bytes).IgnoreError();
      }
    });
  };
  // Reads the first answer to a forwarded job: Busy means try another agent.
  auto first_answer = [&]() -> absl::StatusOr<std::string> {
    return agent->Receive(absl::Seconds(30));
  };

  while (true) {
    std::string payload;
    {
      absl::MutexLock lock(inbox_mu.get());
      struct Wait {
        std::deque<std::string>* inbox;
        bool* closed;
      } wait{inbox.get(), closed.get()};
      inbox_mu->AwaitWithTimeout(
          absl::Condition(+[](Wait* w) { return !w->inbox->empty() || *w->closed; }, &wait),
          absl::Seconds(1));
      if (inbox->empty()) {
        if (*closed) break;
        absl::MutexLock stop_lock(&mu);
        if (stopping) break;
        continue;
      }
      payload = std::move(inbox->front());
      inbox->pop_front();
    }
    proto::ChannelMessage message;
    if (!message.ParseFromString(payload)) {
      reply(Rejected("", proto::JOB_REJECT_CODE_MALFORMED, "not a ChannelMessage"));
      continue;
    }
    if (message.has_control()) {
      // Queries and cancels go to the agent that took the job.
      proto::ControlRequest control;
      control.ParseFromString(message.control().control_request());
      const std::string job_id =
          control.has_query_job() ? control.query_job().job_id() : control.cancel_job().job_id();
      std::string holder;
      {
        absl::MutexLock lock(&mu);
        auto it = job_agent.find(job_id);
        if (it != job_agent.end()) holder = it->second;
      }
      if (holder.empty()) {
        // Not taken through this member since it started: ask the agents connected to it.
        for (const proto::Machine& machine : Machines()) {
          if (!connect(machine).ok() || !agent->Send(payload).ok()) continue;
          absl::StatusOr<std::string> answer = first_answer();
          proto::ChannelMessage parsed;
          if (!answer.ok() || !parsed.ParseFromString(*answer)) continue;
          if (parsed.has_job_status() && parsed.job_status().state() == proto::JOB_STATE_UNKNOWN) continue;
          holder = machine.machine_id();
          {
            absl::MutexLock lock(&mu);
            job_agent[job_id] = holder;
          }
          cloud_channel->Send(*answer).IgnoreError();
          start_pump();
          break;
        }
        if (holder.empty()) {
          // No agent here has it: it may be with an agent behind another member, so saying
          // UNKNOWN could make the cloud run it twice. Close instead: the cloud retries, and the
          // relay may pick the member that knows.
          LogInfo("gateway_query_unknown_job", {{"job_id", job_id}});
          cloud_channel->Close(1011, "job not known to this gateway member").IgnoreError();
          break;
        }
        continue;
      }
      if (agent == nullptr || agent_id != holder) {
        absl::StatusOr<proto::Machine> machine = Machine(holder, false);
        if (!machine.ok() || !connect(*machine).ok()) {
          cloud_channel->Close(1011, "the agent holding the job is not connected").IgnoreError();
          break;
        }
        start_pump();
      }
      agent->Send(payload).IgnoreError();
      continue;
    }
    if (!message.has_job_request()) {
      reply(Rejected("", proto::JOB_REJECT_CODE_MALFORMED, "unexpected message kind"));
      continue;
    }
    // A job: check the cloud's signature before touching the credentials.
    const proto::SignedJobRequest& signed_job = message.job_request();
    proto::JobRequest job;
    if (signed_job.key_id() != options.identity.cloud_signing_key_id() ||
        !crypto::Ed25519Verify(options.identity.cloud_signing_pub(),
                               proto::JobRequestSigningInput(signed_job.job_request()),
                               signed_job.signature())
             .ok() ||
        !job.ParseFromString(signed_job.job_request())) {
      job.ParseFromString(signed_job.job_request());
      LogWarning("gateway_job_refused", {{"job_id", job.job_id()}, {"reason", "bad signature"}});
      reply(Rejected(job.job_id(), proto::JOB_REJECT_CODE_BAD_SIGNATURE,
                     "not signed by the pinned cloud key"));
      continue;
    }
    if (job.target().cluster_id() != options.identity.cluster_id()) {
      reply(Rejected(job.job_id(), proto::JOB_REJECT_CODE_WRONG_TARGET, "job is for another cluster"));
      continue;
    }
    absl::StatusOr<crypto::Credentials> credentials =
        crypto::OpenCredentials(job.credentials(), options.cluster_key, job.connection_id());
    if (!credentials.ok()) {
      LogWarning("gateway_job_refused", {{"job_id", job.job_id()}, {"reason", "credentials unreadable"}});
      reply(Rejected(job.job_id(), proto::JOB_REJECT_CODE_CREDENTIALS_UNREADABLE,
                     absl::StrCat("cluster envelope: ", credentials.status().message())));
      continue;
    }
    // Candidates: the job's machine if it names one, else every agent behind the cluster.
    std::vector<proto::Machine> candidates;
    std::string sent_before;
    {
      absl::MutexLock lock(&mu);
      auto it = job_agent.find(job.job_id());
      if (it != job_agent.end()) sent_before = it->second;
    }
    if (!sent_before.empty()) {
      // Sent here before (the cloud lost the answer): only that agent, whose ledger dedupes.
      absl::StatusOr<proto::Machine> machine = Machine(sent_before, true);
      if (machine.ok()) candidates.push_back(*machine);
    } else if (!job.target().machine_id().empty()) {
      absl::StatusOr<proto::Machine> machine = Machine(job.target().machine_id(), true);
      if (machine.ok()) candidates.push_back(*machine);
    } else {
      if (Machines().empty()) RefreshMachines().IgnoreError();
      candidates = Machines();
    }
    bool delivered = false;
    std::string last_answer;
    for (const proto::Machine& machine : candidates) {
      if (!connect(machine).ok()) continue;  // not connected to this member
      absl::StatusOr<proto::SealedEnvelope> resealed =
          crypto::SealCredentials(machine.x25519_pub(), job.connection_id(), *credentials);
      if (!resealed.ok()) continue;
      proto::ChannelMessage forward;
      proto::ForwardedJobRequest* forwarded = forward.mutable_forwarded_job_request();
      *forwarded->mutable_job() = signed_job;
      forwarded->set_credentials(resealed->SerializeAsString());
      forwarded->set_member_id(options.identity.member_id());
      absl::StatusOr<std::string> signature =
          crypto::Ed25519Sign(options.member_signing_key, proto::ForwardedJobSigningInput(*forwarded));
      if (!signature.ok()) continue;
      forwarded->set_signature(*signature);
      if (!RecordForward(job.job_id(), machine.machine_id()).ok()) break;  // cannot keep the promise
      if (!agent->Send(forward.SerializeAsString()).ok()) continue;
      absl::StatusOr<std::string> answer = first_answer();
      if (!answer.ok()) continue;
      proto::ChannelMessage parsed;
      parsed.ParseFromString(*answer);
      last_answer = *answer;
      if (parsed.has_busy()) continue;  // try the next agent
      cloud_channel->Send(*answer).IgnoreError();
      start_pump();
      delivered = true;
      LogInfo("gateway_job_forwarded", {{"job_id", job.job_id()}, {"machine_id", machine.machine_id()}});
      break;
    }
    credentials->password = crypto::SecretBytes();  // the plaintext existed for the re-sealing only
    if (!delivered && !sent_before.empty() && last_answer.empty()) {
      // The agent that may hold the job is not connected: "Busy" would unpin the run and let
      // another member run it too. No answer instead; the cloud keeps it pinned and retries.
      cloud_channel->Close(1011, "the agent this job went to is not connected").IgnoreError();
      break;
    }
    if (!delivered) {
      if (!last_answer.empty()) {
        cloud_channel->Send(last_answer).IgnoreError();  // every agent was busy
      } else {
        proto::ChannelMessage busy;
        busy.mutable_busy()->set_job_id(job.job_id());
        busy.mutable_busy()->set_reason("no idle agent behind this gateway member");
        reply(busy);
      }
    }
  }
  done = true;
  if (agent != nullptr) agent->Close().IgnoreError();
  if (pump.joinable()) pump.join();
}

GatewayMember::GatewayMember(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GatewayMember::~GatewayMember() { Stop(); }

uint16_t GatewayMember::relay_port() const { return impl_->local_relay->port(); }
uint16_t GatewayMember::service_port() const { return impl_->service_port; }

absl::StatusOr<std::unique_ptr<GatewayMember>> GatewayMember::Start(MemberOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const MemberOptions& o = impl->options;
  // Local relay keys live in memory only: they are this process's, renewed at every start.
  ASSIGN_OR_RETURN(crypto::SecretBytes agent_secret, crypto::RandomSecret(32));
  ASSIGN_OR_RETURN(crypto::SecretBytes member_secret, crypto::RandomSecret(32));
  impl->agent_key = crypto::SasKey{kAgentKeyName, crypto::SecretBytes(crypto::Base64Encode(agent_secret.view())),
                                   crypto::kSasListen};
  impl->member_key = crypto::SasKey{kMemberKeyName,
                                    crypto::SecretBytes(crypto::Base64Encode(member_secret.view())),
                                    crypto::kSasSend | crypto::kSasManage};
  std::vector<crypto::SasKey> keys;
  keys.push_back(crypto::SasKey{impl->agent_key.name, impl->agent_key.key.Clone(), impl->agent_key.rights});
  keys.push_back(crypto::SasKey{impl->member_key.name, impl->member_key.key.Clone(), impl->member_key.rights});

  ASSIGN_OR_RETURN(auto relay_address, HostPort(o.local_relay_listen));
  ASSIGN_OR_RETURN(auto service_address, HostPort(o.service_listen));
  if (o.insecure && (!IsLoopbackHost(relay_address.first) || !IsLoopbackHost(service_address.first))) {
    return absl::InvalidArgumentError(
        "--insecure serves plaintext and is only allowed on loopback addresses (local relay and service)");
  }
  relay::RelayOptions relay_options;
  relay_options.listen_host = relay_address.first;
  relay_options.listen_port = relay_address.second;
  relay_options.insecure = o.insecure;
  relay_options.tls_cert_file = o.tls_cert_file;
  relay_options.tls_key_file = o.tls_key_file;
  relay_options.threads = 1;
  relay_options.keys = std::make_shared<const crypto::SasKeyRing>(std::move(keys));
  ASSIGN_OR_RETURN(impl->local_relay, relay::RelayServer::Create(std::move(relay_options)));
  impl->local_relay->Start();
  impl->advertised_relay_url =
      !o.advertised_relay_url.empty()
          ? o.advertised_relay_url
          : absl::StrCat(o.insecure ? "http://" : "https://", relay_address.first, ":", impl->local_relay->port());

  client::CloudEndpoint endpoint{o.identity.cloud(), o.identity.cloud_ca_file(), o.identity.cloud_insecure()};
  ASSIGN_OR_RETURN(impl->cloud, client::CloudClient::Create(endpoint, crypto::SecretBytes()));
  RETURN_IF_ERROR(impl->LoadForwards());
  if (absl::Status status = impl->RefreshMachines(); !status.ok()) {
    LogWarning("gateway_machines_unavailable", {{"error", status.ToString()}});
  }

  // The local service agents fetch their tokens from.
  impl->service_impl = std::make_unique<GatewayServiceImpl>(impl.get());
  grpc::ServerBuilder builder;
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!o.insecure) {
    ASSIGN_OR_RETURN(crypto::SecretBytes key, crypto::ReadSecretFile(o.tls_key_file));
    std::ifstream in(o.tls_cert_file);
    std::stringstream cert;
    cert << in.rdbuf();
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({std::string(key.view()), cert.str()});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(o.service_listen, credentials, &port);
  builder.RegisterService(impl->service_impl.get());
  impl->service = builder.BuildAndStart();
  if (impl->service == nullptr || port == 0) {
    impl->local_relay->Stop();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.service_listen));
  }
  impl->service_port = static_cast<uint16_t>(port);

  // The cloud side: a listener on the cluster's entity, like every other member.
  net::ListenerOptions listener;
  listener.relay_url = o.identity.relay_url();
  listener.entity = RelayName(o.identity.entity());
  listener.listener_id = o.identity.member_id();
  listener.ca_file = o.identity.relay_ca_file();
  Impl* raw = impl.get();
  listener.token_provider = [raw]() -> absl::StatusOr<std::string> {
    proto::GetMemberListenTokenRequest request;
    RETURN_IF_ERROR(auth::SignMachineAuth("/tether.proto.ClusterService/GetMemberListenToken",
                                          raw->options.identity.member_id(),
                                          raw->options.member_signing_key, WallNow(), &request));
    proto::ListenToken token;
    RETURN_IF_ERROR(raw->cloud->Unary("member listen token", [&](grpc::ClientContext* context) {
      return raw->cloud->clusters()->GetMemberListenToken(context, request, &token);
    }));
    return token.token();
  };
  listener.on_channel = [raw](std::shared_ptr<net::ListenerChannel> channel) {
    raw->OnCloudChannel(std::move(channel));
  };
  ASSIGN_OR_RETURN(impl->cloud_listener, net::RelayListener::Create(std::move(listener)));
  RETURN_IF_ERROR(impl->cloud_listener->Start());
  {
    absl::MutexLock lock(&impl->mu);
    impl->threads.emplace_back([raw] { raw->ReportPresence(); });
  }
  LogInfo("gateway_member_started", {{"member_id", o.identity.member_id()},
                                     {"cluster_id", o.identity.cluster_id()},
                                     {"local_relay", impl->advertised_relay_url},
                                     {"service_port", absl::StrCat(port)}});
  return std::unique_ptr<GatewayMember>(new GatewayMember(std::move(impl)));
}

void GatewayMember::Stop() {
  if (impl_ == nullptr) return;
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    impl_->stop_cv.SignalAll();
  }
  if (impl_->cloud_listener != nullptr) impl_->cloud_listener->Stop();
  {
    absl::MutexLock lock(&impl_->mu);
    threads.swap(impl_->threads);
  }
  for (std::thread& t : threads) t.join();
  if (impl_->service != nullptr) impl_->service->Shutdown(std::chrono::system_clock::now());
  if (impl_->local_relay != nullptr) {
    impl_->local_relay->Stop();
    impl_->local_relay->Wait();
  }
}

}  // namespace tether::gateway
