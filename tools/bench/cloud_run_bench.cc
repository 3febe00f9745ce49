// cloud_run_bench: how fast the cloud queues and dispatches runs (issue: ≥ 1,000 runs/s queued
// and dispatched on 2 cores with every state transition synced).
//
//   bazel run -c opt //tools/bench:cloud_run_bench -- [--machines=16] [--runs=4000] [--clients=8]
//
// One process: a real relay binary (child process), the cloud in-process (CloudServer on
// loopback, RocksDB in a temp dir, group commit), and one stub agent per machine (real relay
// listeners that accept every job and finish it at once with one log line). Measures, in one run:
//   1. RunFlow-to-JobRequest latency: one idle machine, one run at a time, time from the RunFlow
//      call to the stub agent receiving the signed JobRequest (median, p90, p99).
//   2. Throughput: `clients` threads call RunFlow over gRPC for `runs` runs spread over `machines`
//      machines; the time until every run is SUCCEEDED gives runs/s through the whole life
//      (queued -> dispatching -> running -> succeeded, 4 synced transitions each), and the
//      group-commit counters show how many fsyncs that took.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cloud/testing/cloud_harness.h"
#include "common/base/log.h"
#include "common/crypto/envelope.h"

ABSL_FLAG(int, machines, 16, "machines (stub agents) runs are spread over");
ABSL_FLAG(int, runs, 4000, "runs in the throughput phase");
ABSL_FLAG(int, clients, 8, "client threads calling RunFlow");
ABSL_FLAG(int, latency_samples, 200, "sequential runs in the latency phase");

namespace {

using tether::cloud::testing::CloudHarness;
using tether::cloud::testing::StubAgent;
using tether::cloud::testing::StubAgentOptions;
using tether::cloud::testing::TestMachine;
namespace proto = tether::proto;

constexpr char kFlow[] = R"({"name":"Bench","inputs":[{"name":"N","type":"number","default":1}],
  "actions":[{"action":"Variables.SetVariable","variable":"X","value":"%N%"}]})";

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "cloud_run_bench: %s\n", what.c_str());
  std::exit(1);
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  tether::SetMinLogLevel(tether::LogLevel::kWarning);
  char dir_template[] = "/tmp/cloud-bench-XXXXXX";
  if (getenv("TEST_TMPDIR") == nullptr) setenv("TEST_TMPDIR", mkdtemp(dir_template), 1);

  const int machine_count = absl::GetFlag(FLAGS_machines);
  auto harness = CloudHarness::Start();
  if (!harness.ok()) Die(std::string(harness.status().message()));
  CloudHarness& h = **harness;
  auto token = h.CreateUser("bench");
  if (!token.ok()) Die("user");
  auto flows = proto::FlowService::NewStub(h.channel());
  auto connections = proto::ConnectionService::NewStub(h.channel());
  proto::CreateFlowRequest create_flow;
  create_flow.set_name("bench");
  create_flow.set_definition_json(kFlow);
  proto::Flow flow;
  if (!flows->CreateFlow(CloudHarness::Context(*token).get(), create_flow, &flow).ok()) Die("flow");

  absl::Mutex mu;
  absl::flat_hash_map<std::string, absl::Time> received;  // run_id -> when the agent got the job
  std::vector<TestMachine> machines;
  std::vector<std::unique_ptr<StubAgent>> agents;
  std::vector<std::string> connection_ids;
  for (int i = 0; i < machine_count; ++i) {
    auto machine = h.RegisterMachine(*token, absl::StrCat("bench-", i));
    if (!machine.ok()) Die(std::string(machine.status().message()));
    const std::string id = absl::StrCat("conn-bench-", 100000 + i);
    proto::CreateConnectionRequest request;
    request.set_connection_id(id);
    request.set_name(id);
    request.mutable_target()->set_machine_id(machine->machine_id);
    request.set_username("bench");
    request.set_mode(proto::RUN_MODE_UNATTENDED);
    *request.mutable_sealed_credentials() = *tether::crypto::SealCredentials(
        machine->x25519.public_key, id, {"bench", tether::crypto::SecretBytes("pw")});
    proto::Connection connection;
    if (!connections->CreateConnection(CloudHarness::Context(*token).get(), request, &connection).ok()) {
      Die("connection");
    }
    connection_ids.push_back(id);
    StubAgentOptions options;
    options.log_lines_per_job = 1;
    options.on_job = [&](const proto::JobRequest& job) {
      const absl::Time now = absl::Now();
      absl::MutexLock lock(&mu);
      received.emplace(job.run_id(), now);
    };
    auto agent = h.StartAgent(*machine, std::move(options));
    if (!agent.ok()) Die(std::string(agent.status().message()));
    agents.push_back(*std::move(agent));
    machines.push_back(*std::move(machine));
  }
  tether::cloud::RunManager* runs = h.cloud().runs();
  auto wait_finished = [&](uint64_t target) {
    while (runs->stats().runs_finished < target) absl::SleepFor(absl::Milliseconds(1));
  };

  // Warm-up: one run per machine, so every link and channel is open.
  auto run_stub = proto::RunService::NewStub(h.channel());
  auto submit = [&](proto::RunService::Stub* stub, const std::string& connection_id) {
    proto::RunFlowRequest request;
    request.set_flow_id(flow.flow_id());
    request.set_connection_id(connection_id);
    proto::RunFlowResponse response;
    grpc::Status status = stub->RunFlow(CloudHarness::Context(*token).get(), request, &response);
    if (!status.ok()) Die(status.error_message());
    return response.run_id();
  };
  for (const std::string& id : connection_ids) submit(run_stub.get(), id);
  wait_finished(machine_count);

  // 1. Latency: RunFlow call -> JobRequest at the agent, one run at a time on an idle machine.
  std::vector<double> latency_ms;
  const int samples = absl::GetFlag(FLAGS_latency_samples);
  for (int i = 0; i < samples; ++i) {
    const uint64_t before = runs->stats().runs_finished;
    const absl::Time start = absl::Now();
    const std::string run_id = submit(run_stub.get(), connection_ids[0]);
    wait_finished(before + 1);
    absl::MutexLock lock(&mu);
    latency_ms.push_back(absl::ToDoubleMilliseconds(received[run_id] - start));
  }

  // 2. Throughput.
  const int total = absl::GetFlag(FLAGS_runs);
  const int clients = absl::GetFlag(FLAGS_clients);
  const uint64_t finished_before = runs->stats().runs_finished;
  const auto commits_before = h.cloud().MetricsText();
  std::atomic<int> next{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  std::atomic<int64_t> submit_done_ns{0};
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      auto stub = proto::RunService::NewStub(h.channel());
      for (int i = next++; i < total; i = next++) submit(stub.get(), connection_ids[i % machine_count]);
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Duration submit_time = absl::Now() - start;
  wait_finished(finished_before + total);
  const absl::Duration total_time = absl::Now() - start;
  (void)submit_done_ns;

  std::printf("cloud_run_bench: %d machines, %d runs, %d client threads, %d cores\n", machine_count,
              total, clients, static_cast<int>(std::thread::hardware_concurrency()));
  std::printf("RunFlow -> JobRequest latency (ms, %d samples): median %.2f  p90 %.2f  p99 %.2f\n",
              samples, Percentile(latency_ms, 0.5), Percentile(latency_ms, 0.9),
              Percentile(latency_ms, 0.99));
  std::printf("RunFlow calls: %.0f runs/s queued (%d in %.2f s)\n",
              total / absl::ToDoubleSeconds(submit_time), total, absl::ToDoubleSeconds(submit_time));
  std::printf("end to end: %.0f runs/s queued, dispatched and finished (%.2f s)\n",
              total / absl::ToDoubleSeconds(total_time), absl::ToDoubleSeconds(total_time));
  std::printf("metrics before:\n%s\nmetrics after:\n%s", commits_before.c_str(),
              h.cloud().MetricsText().c_str());
  for (auto& agent : agents) agent->Stop();
  return 0;
}
