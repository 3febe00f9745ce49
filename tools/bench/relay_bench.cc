// relay_bench: latency, throughput and idle-listener memory of //relay:relay_server, each next to
// a direct Beast WebSocket echo server measured in the same run (docs/BENCHMARKS.md, issue 3).
//
//   bazel run -c opt //tools/bench:relay_bench               # full run, about 2 minutes on 2 cores
//   bazel run -c opt //tools/bench:relay_bench -- --quick    # smoke run, a few seconds
//
// Both servers run as child processes (the relay binary is a data dependency; the echo server is
// this binary with --serve_echo), so their CPU time and VmRSS are read from /proc apart from the
// clients, which run here on --client_threads threads. A tool, not a test: targets are reported
// as met or missed, and the exit code never depends on them.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/sas_token.h"
#include "common/crypto/secret.h"
#include "tools/bench/echo_server.h"
#include "tools/bench/relay_clients.h"
#include "tools/bench/relay_report.h"
#include "tools/bench/server_process.h"

ABSL_FLAG(bool, quick, false,
          "shrink every phase for a smoke run (flags given explicitly still win)");
ABSL_FLAG(int, idle_listeners, 10000, "idle WebSocket listeners in the memory phase");
ABSL_FLAG(bool, tls, true, "also measure idle TLS listeners");
ABSL_FLAG(int, server_threads, 0, "--threads of the relay, threads of the echo server (0 = cores)");
ABSL_FLAG(int, client_threads, 1, "I/O threads of the load-generating clients");
ABSL_FLAG(int, reps, 3, "repetitions of the latency and throughput runs");
ABSL_FLAG(int, latency_samples, 2000, "timed round trips per repetition and server");
ABSL_FLAG(int, latency_warmup, 200, "untimed round trips before them");
ABSL_FLAG(double, throughput_seconds, 2.0, "measured time of each throughput run");
ABSL_FLAG(double, warmup_seconds, 0.5, "time under load before each throughput measurement");
ABSL_FLAG(std::string, channels, "1,16,256", "concurrent channels (connections) for throughput");
ABSL_FLAG(int, window, 16, "messages in flight per channel");
ABSL_FLAG(int, message_bytes, 1024, "message payload size");
ABSL_FLAG(int, relay_listeners, 1, "echoing listener connections for the latency/throughput runs");
ABSL_FLAG(int, idle_rounds, 2,
          "rounds of N idle connections on the same server process (later rounds show whether "
          "memory is reused or keeps growing)");
ABSL_FLAG(int, connect_concurrency, 200, "idle-listener connection attempts in flight");
ABSL_FLAG(int, source_addresses, 0,
          "source addresses 127.0.0.2.. for idle listeners (0 = enough for the ephemeral range)");
ABSL_FLAG(std::string, relay_binary, "", "relay_server binary (default: the runfile)");
ABSL_FLAG(bool, keep_tmp, false, "keep the temp dir (keys, certificate, server logs)");
// Internal: this binary as the direct echo server child process.
ABSL_FLAG(bool, serve_echo, false, "internal: run as the echo server child process");
ABSL_FLAG(std::string, port_file, "", "internal (--serve_echo): write the port here");
ABSL_FLAG(int, threads, 1, "internal (--serve_echo): server threads");
ABSL_FLAG(std::string, tls_cert, "", "internal (--serve_echo): TLS certificate");
ABSL_FLAG(std::string, tls_key, "", "internal (--serve_echo): TLS key");

namespace tether::bench {
namespace {

constexpr int kListenersPerEntity = 25;  // the relay's default limit
constexpr char kEntity[] = "bench";

// ---------------------------------------------------------------------------------------------
// Settings.

// Flags named on the command line (this abseil keeps CommandLineFlag::IsSpecifiedOnCommandLine
// private), so that --quick only changes the ones left at their defaults.
std::vector<std::string>& ExplicitFlags() {
  static auto* names = new std::vector<std::string>();
  return *names;
}

void NoteExplicitFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg(argv[i]);
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "-")) continue;
    absl::ConsumePrefix(&arg, "-");
    std::string name(arg.substr(0, arg.find('=')));
    ExplicitFlags().push_back(name);
    if (absl::StartsWith(name, "no")) ExplicitFlags().push_back(name.substr(2));
  }
}

bool Explicit(absl::string_view name) {
  return std::find(ExplicitFlags().begin(), ExplicitFlags().end(), name) != ExplicitFlags().end();
}

template <typename T>
T Pick(const absl::Flag<T>& flag, absl::string_view name, bool quick, T quick_value) {
  return quick && !Explicit(name) ? quick_value : absl::GetFlag(flag);
}

absl::StatusOr<Settings> ResolveSettings() {
  Settings s;
  s.quick = absl::GetFlag(FLAGS_quick);
  bool q = s.quick;
  s.idle_listeners = Pick(FLAGS_idle_listeners, "idle_listeners", q, 1000);
  s.tls = absl::GetFlag(FLAGS_tls);
  int cores = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  s.server_threads =
      absl::GetFlag(FLAGS_server_threads) > 0 ? absl::GetFlag(FLAGS_server_threads) : cores;
  s.client_threads = std::max(1, absl::GetFlag(FLAGS_client_threads));
  s.reps = std::max(1, Pick(FLAGS_reps, "reps", q, 1));
  s.latency_samples = std::max(1, Pick(FLAGS_latency_samples, "latency_samples", q, 300));
  s.latency_warmup = std::max(0, Pick(FLAGS_latency_warmup, "latency_warmup", q, 50));
  s.throughput_seconds = Pick(FLAGS_throughput_seconds, "throughput_seconds", q, 0.5);
  s.warmup_seconds = Pick(FLAGS_warmup_seconds, "warmup_seconds", q, 0.2);
  std::string channels = absl::GetFlag(FLAGS_channels);
  for (absl::string_view c : absl::StrSplit(channels, ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--channels: bad count '", c, "'"));
    }
    s.channels.push_back(n);
  }
  s.window = std::max(1, absl::GetFlag(FLAGS_window));
  s.message_bytes = std::max(1, absl::GetFlag(FLAGS_message_bytes));
  s.relay_listeners = std::clamp(absl::GetFlag(FLAGS_relay_listeners), 1, kListenersPerEntity);
  s.connect_concurrency = std::max(1, absl::GetFlag(FLAGS_connect_concurrency));
  s.source_addresses = std::max(0, absl::GetFlag(FLAGS_source_addresses));
  s.idle_rounds = std::max(1, absl::GetFlag(FLAGS_idle_rounds));
  if (s.throughput_seconds <= 0 || s.warmup_seconds < 0) {
    return absl::InvalidArgumentError("--throughput_seconds must be > 0, --warmup_seconds >= 0");
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

absl::Duration Seconds(double s) { return absl::Milliseconds(static_cast<int64_t>(s * 1000)); }

std::string ShellQuote(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_=./:,@%+") == std::string::npos) {
    return arg;
  }
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Random key text for the keys file (printable, as the relay's keys file wants).
std::string RandomKey() {
  std::random_device device;
  static constexpr char kAlphabet[] = "0123456789abcdef";
  std::string key;
  for (int i = 0; i < 48; ++i) key += kAlphabet[device() % 16];
  return key;
}

int64_t MetricValue(const std::string& page, absl::string_view series) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::ConsumePrefix(&line, series) || !absl::ConsumePrefix(&line, " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return static_cast<int64_t>(value);
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// The run.

class Bench {
 public:
  Bench(Settings settings, std::string self_binary, std::string relay_binary, std::string dir)
      : s_(std::move(settings)),
        self_binary_(std::move(self_binary)),
        relay_binary_(std::move(relay_binary)),
        dir_(std::move(dir)),
        work_(boost::asio::make_work_guard(ioc_)),
        payload_(std::make_shared<const std::string>(s_.message_bytes, 'x')) {}

  ~Bench() {
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }

  absl::Status Setup();
  int Run(const Machine& machine, const std::string& command);

 private:
  // Phases.
  void RunLatencyAndThroughput();
  LatencyResult MeasureLatency(const Dial& dial, std::vector<double>* pooled);
  LoadResult MeasureLoad(const Dial& dial, int channels, pid_t server_pid,
                         std::shared_ptr<ClientCounters> counters);
  IdleResult MeasureIdle(bool relay, bool tls);
  void CheckRelayCounters(uint16_t port);

  // Processes.
  absl::StatusOr<std::unique_ptr<ServerProcess>> StartRelay(const std::string& name, bool tls);
  absl::StatusOr<std::unique_ptr<ServerProcess>> StartEcho(const std::string& name, bool tls);
  absl::Status MakeCertificate();
  void NoteServerLog(const std::string& what, const ServerProcess::LogSummary& log);

  void Problem(std::string text) {
    std::printf("  ! %s\n", text.c_str());
    std::fflush(stdout);
    results_.problems.push_back(std::move(text));
  }

  Dial RelaySenderDial(uint16_t port) const {
    return Dial{port, absl::StrCat("/$hc/", kEntity, "?action=connect"), send_token_, 0};
  }
  Dial RelayListenerDial(uint16_t port, int index) const {
    return Dial{port, absl::StrCat("/$hc/", kEntity, "?action=listen&id=echo-", index),
                listen_token_, 0};
  }

  Settings s_;
  std::string self_binary_;
  std::string relay_binary_;
  std::string dir_;
  std::string keys_file_;
  std::string cert_file_;
  std::string key_file_;
  std::string listen_token_;
  std::string send_token_;

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  std::shared_ptr<const std::string> payload_;

  RelayBenchResults results_;
  int source_address_count_ = 1;
  rlim_t file_limit_ = 0;
  std::shared_ptr<ClientCounters> relay_counters_ = std::make_shared<ClientCounters>();
};

absl::Status Bench::Setup() {
  // File descriptors: N idle clients here and N connections in the server, which inherits the
  // limit (it is spawned after this).
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  file_limit_ = limit.rlim_cur;
  int usable = static_cast<int>(std::min<rlim_t>(file_limit_, 1 << 30)) - 200;
  if (s_.idle_listeners > usable) {
    results_.notes.push_back(absl::StrCat("idle listeners lowered from ", s_.idle_listeners, " to ",
                                          usable, ": RLIMIT_NOFILE hard limit is ", file_limit_));
    s_.idle_listeners = std::max(1, usable);
  }
  // Source addresses: each 127.0.0.x has the whole ephemeral port range toward the server.
  int low = 32768;
  int high = 60999;
  {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    in >> low >> high;
  }
  int per_address = std::max(1000, (high - low + 1) / 2);  // leave room for TIME_WAIT reuse
  source_address_count_ = s_.source_addresses > 0
                              ? s_.source_addresses
                              : std::max(1, (s_.idle_listeners + per_address - 1) / per_address);
  source_address_count_ = std::min(source_address_count_, 250);

  // Keys: one with Listen, one with Send, as a deployment would have.
  keys_file_ = absl::StrCat(dir_, "/sas_keys");
  std::string listen_key = RandomKey();
  std::string send_key = RandomKey();
  {
    std::ofstream out(keys_file_);
    out << "bench-listen " << listen_key << " Listen\n"
        << "bench-send " << send_key << " Send\n";
    if (!out) return absl::InternalError("cannot write the keys file");
  }
  chmod(keys_file_.c_str(), 0600);
  int64_t expiry = absl::ToUnixSeconds(absl::Now() + absl::Hours(24));
  // Scope "/$hc" covers every entity below it (segment-wise), so one token serves all listeners.
  listen_token_ = crypto::CreateSasToken("http://127.0.0.1/$hc", "bench-listen",
                                         crypto::SecretBytes(listen_key), expiry);
  send_token_ = crypto::CreateSasToken("http://127.0.0.1/$hc", "bench-send",
                                       crypto::SecretBytes(send_key), expiry);

  for (int i = 0; i < s_.client_threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ServerProcess>> Bench::StartRelay(const std::string& name,
                                                                 bool tls) {
  std::vector<std::string> flags = {"--listen=127.0.0.1:0",
                                    absl::StrCat("--sas_keys_file=", keys_file_),
                                    absl::StrCat("--threads=", s_.server_threads)};
  if (tls) {
    flags.push_back(absl::StrCat("--tls_cert=", cert_file_));
    flags.push_back(absl::StrCat("--tls_key=", key_file_));
  } else {
    flags.push_back("--insecure");
  }
  return ServerProcess::Start(relay_binary_, dir_, name, flags, absl::Seconds(20));
}

absl::StatusOr<std::unique_ptr<ServerProcess>> Bench::StartEcho(const std::string& name, bool tls) {
  std::vector<std::string> flags = {"--serve_echo", absl::StrCat("--threads=", s_.server_threads)};
  if (tls) {
    flags.push_back(absl::StrCat("--tls_cert=", cert_file_));
    flags.push_back(absl::StrCat("--tls_key=", key_file_));
  }
  return ServerProcess::Start(self_binary_, dir_, name, flags, absl::Seconds(20));
}

absl::Status Bench::MakeCertificate() {
  cert_file_ = absl::StrCat(dir_, "/tls_cert.pem");
  key_file_ = absl::StrCat(dir_, "/tls_key.pem");
  mode_t old_mask = umask(077);
  absl::Status status =
      RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", key_file_, "-out", cert_file_, "-days", "2", "-subj",
                  "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"});
  umask(old_mask);
  if (!status.ok()) return status;
  if (chmod(key_file_.c_str(), 0600) != 0) return absl::InternalError("chmod of the TLS key");
  return absl::OkStatus();
}

void Bench::NoteServerLog(const std::string& what, const ServerProcess::LogSummary& log) {
  if (log.warnings == 0 && log.errors == 0) return;
  Problem(absl::StrCat(what, " logged ", log.warnings, " warning and ", log.errors,
                       " error/other lines, e.g. ",
                       log.samples.empty() ? std::string("?") : log.samples.front()));
}

// One sender, one message at a time.
LatencyResult Bench::MeasureLatency(const Dial& dial, std::vector<double>* pooled) {
  LatencyResult result;
  auto counters = dial.authorization.empty() ? std::make_shared<ClientCounters>() : relay_counters_;
  auto sender = EchoSender::Create(ioc_, dial, payload_, counters);
  auto connect = std::make_shared<CompletionGroup>();
  sender->Connect(connect);
  if (absl::Status st = connect->Wait(absl::Seconds(30)); !st.ok()) {
    result.error = std::string(st.message());
    return result;
  }
  auto samples = std::make_shared<std::vector<double>>();
  samples->reserve(s_.latency_samples);
  auto run = std::make_shared<CompletionGroup>();
  sender->MeasureLatency(s_.latency_warmup, s_.latency_samples, samples, run);
  absl::Status st = run->Wait(absl::Seconds(120));
  auto close = std::make_shared<CompletionGroup>();
  sender->Close(close);
  absl::Status closed = close->Wait(absl::Seconds(10));
  if (!st.ok()) {
    result.error = std::string(st.message());
    return result;
  }
  if (!closed.ok()) Problem(absl::StrCat("latency sender close: ", closed.message()));
  result.ok = true;
  result.samples = *samples;
  pooled->insert(pooled->end(), samples->begin(), samples->end());
  return result;
}

// `channels` senders each keeping the window in flight; echoes counted over the measured time.
LoadResult Bench::MeasureLoad(const Dial& dial, int channels, pid_t server_pid,
                              std::shared_ptr<ClientCounters> counters) {
  LoadResult result;
  std::vector<std::shared_ptr<EchoSender>> senders;
  auto connect = std::make_shared<CompletionGroup>();
  for (int i = 0; i < channels; ++i) {
    senders.push_back(EchoSender::Create(ioc_, dial, payload_, counters));
    senders.back()->Connect(connect);
  }
  absl::Status st = connect->Wait(absl::Seconds(60));
  if (st.ok()) {
    uint64_t errors_before = counters->errors();
    for (auto& sender : senders) sender->StartLoad(s_.window);
    absl::SleepFor(Seconds(s_.warmup_seconds));
    uint64_t echoed0 = counters->echoed.load();
    absl::Time t0 = absl::Now();
    double server0 = ReadProcessCpuSeconds(server_pid).value_or(0);
    double self0 = SelfCpuSeconds();
    double machine0 = MachineBusyCpuSeconds();
    // The measurement is this interval: sleeping is what the main thread has to do meanwhile.
    absl::SleepFor(Seconds(s_.throughput_seconds));
    uint64_t echoed1 = counters->echoed.load();
    absl::Time t1 = absl::Now();
    double server1 = ReadProcessCpuSeconds(server_pid).value_or(0);
    double self1 = SelfCpuSeconds();
    double machine1 = MachineBusyCpuSeconds();
    double wall = absl::ToDoubleSeconds(t1 - t0);
    result.echoes_per_second = (echoed1 - echoed0) / wall;
    result.server_cores = (server1 - server0) / wall;
    result.client_cores = (self1 - self0) / wall;
    result.other_cores =
        std::max(0.0, (machine1 - machine0) / wall - result.server_cores - result.client_cores);

    auto stop = std::make_shared<CompletionGroup>();
    for (auto& sender : senders) sender->StopLoad(stop);
    st = stop->Wait(absl::Seconds(30));
    if (st.ok() && counters->errors() != errors_before) {
      st = absl::UnavailableError(counters->first_error());
    }
  }
  auto close = std::make_shared<CompletionGroup>();
  for (auto& sender : senders) sender->Close(close);
  absl::Status closed = close->Wait(absl::Seconds(15));
  if (!st.ok()) {
    result.error = std::string(st.message());
    return result;
  }
  if (!closed.ok()) Problem(absl::StrCat("closing ", channels, " senders: ", closed.message()));
  result.ok = true;
  return result;
}

void Bench::CheckRelayCounters(uint16_t port) {
  absl::StatusOr<std::string> page = HttpGet(port, false, "/metrics");
  if (!page.ok()) {
    Problem(absl::StrCat("relay /metrics: ", page.status().message()));
    return;
  }
  int64_t to_listener =
      MetricValue(*page, "tether_relay_frames_forwarded_total{direction=\"to_listener\"}");
  int64_t to_sender =
      MetricValue(*page, "tether_relay_frames_forwarded_total{direction=\"to_sender\"}");
  int64_t sent = static_cast<int64_t>(relay_counters_->sent.load());
  int64_t echoed = static_cast<int64_t>(relay_counters_->echoed.load());
  results_.notes.push_back(
      absl::StrCat("relay counted ", to_listener, " Data frames to the listener and ", to_sender,
                   " to senders; the clients sent ", sent, " and got back ", echoed));
  if (to_listener != sent || to_sender != echoed) {
    Problem(absl::StrCat("relay frame counters disagree with the clients: to_listener ",
                         to_listener, " vs sent ", sent, ", to_sender ", to_sender, " vs echoed ",
                         echoed));
  }
}

void Bench::RunLatencyAndThroughput() {
  std::printf("\n[1+2] latency and throughput: starting relay and echo server processes\n");
  std::fflush(stdout);
  auto relay = StartRelay("relay-load", false);
  if (!relay.ok()) {
    Problem(absl::StrCat("relay did not start: ", relay.status().message()));
    return;
  }
  auto echo = StartEcho("echo-load", false);
  if (!echo.ok()) {
    Problem(absl::StrCat("echo server did not start: ", echo.status().message()));
    return;
  }
  uint16_t relay_port = (*relay)->port();
  Dial direct_dial{(*echo)->port(), "/", "", 0};

  // Echoing listeners stay connected through both phases.
  std::vector<std::shared_ptr<EchoListener>> listeners;
  auto connect = std::make_shared<CompletionGroup>();
  for (int i = 0; i < s_.relay_listeners; ++i) {
    listeners.push_back(
        EchoListener::Create(ioc_, RelayListenerDial(relay_port, i), relay_counters_));
    listeners.back()->Connect(connect);
  }
  if (absl::Status st = connect->Wait(absl::Seconds(30)); !st.ok()) {
    Problem(absl::StrCat("echo listener did not connect: ", st.message()));
    return;
  }

  // Latency: repetitions alternate the two servers so drift in machine load hits both.
  std::printf("[1] latency: %d x %d round trips of %d B per server (+%d warm-up each)\n", s_.reps,
              s_.latency_samples, s_.message_bytes, s_.latency_warmup);
  std::fflush(stdout);
  auto own_cpu = [&] {
    return SelfCpuSeconds() + ReadProcessCpuSeconds((*relay)->pid()).value_or(0) +
           ReadProcessCpuSeconds((*echo)->pid()).value_or(0);
  };
  absl::Time latency_start = absl::Now();
  double own0 = own_cpu();
  double machine0 = MachineBusyCpuSeconds();
  for (int rep = 0; rep < s_.reps; ++rep) {
    LatencyResult d = MeasureLatency(direct_dial, &results_.latency_direct.samples);
    LatencyResult r = MeasureLatency(RelaySenderDial(relay_port), &results_.latency_relay.samples);
    if (!d.ok) Problem(absl::StrCat("direct latency rep ", rep + 1, ": ", d.error));
    if (!r.ok) Problem(absl::StrCat("relay latency rep ", rep + 1, ": ", r.error));
    std::printf("    rep %d: p50 direct %.1f us, relay %.1f us\n", rep + 1,
                Percentile(d.samples, 50), Percentile(r.samples, 50));
    std::fflush(stdout);
  }
  double latency_wall = absl::ToDoubleSeconds(absl::Now() - latency_start);
  results_.latency_other_cores =
      std::max(0.0, (MachineBusyCpuSeconds() - machine0 - (own_cpu() - own0)) / latency_wall);
  for (LatencyResult* l : {&results_.latency_direct, &results_.latency_relay}) {
    l->ok = !l->samples.empty();
    l->p50 = Percentile(l->samples, 50);
    l->p99 = Percentile(l->samples, 99);
  }

  std::printf("[2] throughput: window %d, %.1f s measured after %.1f s warm-up, %d rep(s)\n",
              s_.window, s_.throughput_seconds, s_.warmup_seconds, s_.reps);
  std::fflush(stdout);
  for (int channels : s_.channels) {
    ThroughputRow row;
    row.channels = channels;
    results_.throughput.push_back(row);
  }
  for (int rep = 0; rep < s_.reps; ++rep) {
    for (ThroughputRow& row : results_.throughput) {
      LoadResult d = MeasureLoad(direct_dial, row.channels, (*echo)->pid(),
                                 std::make_shared<ClientCounters>());
      LoadResult r =
          MeasureLoad(RelaySenderDial(relay_port), row.channels, (*relay)->pid(), relay_counters_);
      if (!d.ok) Problem(absl::StrCat("direct ", row.channels, " channels: ", d.error));
      if (!r.ok) Problem(absl::StrCat("relay ", row.channels, " channels: ", r.error));
      std::printf("    rep %d, %3d channels: direct %8.0f echoes/s, relay %8.0f echoes/s\n",
                  rep + 1, row.channels, d.echoes_per_second, r.echoes_per_second);
      std::fflush(stdout);
      row.direct.push_back(d);
      row.relay.push_back(r);
    }
  }

  uint64_t accepted = 0;
  for (auto& l : listeners) accepted += l->channels_accepted();
  results_.notes.push_back(absl::StrCat("echo listeners accepted ", accepted, " channels"));
  auto close = std::make_shared<CompletionGroup>();
  for (auto& l : listeners) l->Close(close);
  if (absl::Status st = close->Wait(absl::Seconds(10)); !st.ok()) {
    Problem(absl::StrCat("closing echo listeners: ", st.message()));
  }
  if (relay_counters_->errors() > 0) {
    Problem(absl::StrCat(relay_counters_->errors(), " client errors against the relay, first: ",
                         relay_counters_->first_error()));
  }
  CheckRelayCounters(relay_port);
  std::string stopped = (*relay)->Stop(absl::Seconds(15));
  if (!absl::StartsWith(stopped, "exit 0")) Problem(absl::StrCat("relay-load stop: ", stopped));
  NoteServerLog("relay (latency/throughput)", (*relay)->SummarizeLog());
  (*echo)->Stop(absl::Seconds(5));
}

// N idle connections to a fresh server process; its RSS before and after.
IdleResult Bench::MeasureIdle(bool relay, bool tls) {
  IdleResult result;
  result.requested = s_.idle_listeners;
  std::string name = absl::StrCat(relay ? "relay" : "echo", "-idle-", tls ? "tls" : "plain");
  auto server = relay ? StartRelay(name, tls) : StartEcho(name, tls);
  if (!server.ok()) {
    result.error = std::string(server.status().message());
    return result;
  }
  ServerProcess& process = **server;
  uint16_t port = process.port();
  pid_t pid = process.pid();
  result.ran = true;

  auto dial = [this, relay, port](int i) {
    Dial d;
    d.port = port;
    d.source_ip = (127u << 24) | static_cast<uint32_t>(2 + i % source_address_count_);
    if (relay) {
      d.target = absl::StrCat("/$hc/idle-", i / kListenersPerEntity, "?action=listen&id=l", i);
      d.authorization = listen_token_;
    } else {
      d.target = "/";
    }
    return d;
  };
  // The relay's listener gauge says when it has registered (or dropped) everyone.
  auto await_listeners = [&](int64_t want) {
    if (!relay) return true;
    absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> page = HttpGet(port, tls, "/metrics");
      if (page.ok() &&
          MetricValue(*page, "tether_relay_listeners{transport=\"websocket\"}") == want) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  };
  auto sample_rss = [pid]() {
    std::vector<ProcessMemory> samples;
    for (int i = 0; i < 3; ++i) {
      if (i > 0) absl::SleepFor(absl::Milliseconds(200));
      if (auto m = ReadProcessMemory(pid); m.ok()) samples.push_back(*m);
    }
    if (samples.empty()) return ProcessMemory{};
    std::sort(samples.begin(), samples.end(), [](const ProcessMemory& a, const ProcessMemory& b) {
      return a.vm_rss_kib < b.vm_rss_kib;
    });
    return samples[samples.size() / 2];
  };

  {
    // Warm-up: code paths, TLS and allocator arenas touched once before the baseline.
    IdleListenerPool warm(ioc_, tls);
    warm.ConnectAll(kListenersPerEntity, kListenersPerEntity, dial, absl::Seconds(20));
    warm.CloseAll(absl::Seconds(10));
  }
  await_listeners(0);
  absl::SleepFor(absl::Milliseconds(300));
  result.before = sample_rss();

  IdleListenerPool pool(ioc_, tls);
  IdleListenerPool::ConnectResult connected =
      pool.ConnectAll(s_.idle_listeners, s_.connect_concurrency, dial, absl::Seconds(120));
  result.connected = connected.connected;
  result.failed = connected.failed;
  result.first_error = connected.first_error;
  result.connect_seconds = absl::ToDoubleSeconds(connected.elapsed);
  if (!await_listeners(result.connected)) {
    Problem(absl::StrCat(name, ": the relay's listener gauge never reached ", result.connected));
  }
  // Let post-handshake work (TLS session tickets, first pings) finish before sampling.
  absl::SleepFor(absl::Seconds(1));
  result.after = sample_rss();
  result.disconnected = pool.disconnected();

  pool.CloseAll(absl::Seconds(30));
  await_listeners(0);
  absl::SleepFor(absl::Milliseconds(300));
  result.after_close = sample_rss();
  for (int round = 2; round <= s_.idle_rounds; ++round) {
    IdleListenerPool again(ioc_, tls);
    IdleListenerPool::ConnectResult next =
        again.ConnectAll(s_.idle_listeners, s_.connect_concurrency, dial, absl::Seconds(120));
    await_listeners(next.connected);
    absl::SleepFor(absl::Seconds(1));
    result.later_rounds.push_back(sample_rss());
    again.CloseAll(absl::Seconds(30));
    await_listeners(0);
    if (next.connected != result.connected) {
      Problem(absl::StrCat(name, ": round ", round, " connected ", next.connected, " of ",
                           result.requested, (next.first_error.empty() ? "" : ", first error: "),
                           next.first_error));
    }
  }
  result.stop = process.Stop(absl::Seconds(15));
  result.log = process.SummarizeLog();

  if (result.failed > 0) {
    Problem(absl::StrCat(name, ": ", result.failed, " of ", result.requested,
                         " connections failed, first: ", result.first_error));
  }
  if (result.disconnected > 0) {
    Problem(absl::StrCat(name, ": ", result.disconnected,
                         " idle connections were dropped by the server while idle"));
  }
  if (relay && !absl::StartsWith(result.stop, "exit 0")) {
    Problem(absl::StrCat(name, " stop: ", result.stop));
  }
  if (relay) NoteServerLog(name, result.log);
  std::printf(
      "    %-16s %6lld connected in %5.1f s; RSS %7.1f -> %7.1f MiB (%.2f KiB each); "
      "after close %.1f MiB%s\n",
      name.c_str(), static_cast<long long>(result.connected), result.connect_seconds,
      result.before.vm_rss_kib / 1024.0, result.after.vm_rss_kib / 1024.0,
      result.PerConnectionKiB(), result.after_close.vm_rss_kib / 1024.0,
      RoundsText(result).c_str());
  std::fflush(stdout);
  return result;
}

int Bench::Run(const Machine& machine, const std::string& command) {
  absl::Time start = absl::Now();
  RunLatencyAndThroughput();

  std::printf(
      "\n[3] idle listeners: %d per server, %d source address(es), %d connects in "
      "flight, fresh server process each\n",
      s_.idle_listeners, source_address_count_, s_.connect_concurrency);
  std::fflush(stdout);
  results_.idle_plain.direct = MeasureIdle(false, false);
  results_.idle_plain.relay = MeasureIdle(true, false);
  if (s_.tls) {
    if (absl::Status st = MakeCertificate(); !st.ok()) {
      results_.tls_skipped = absl::StrCat("no certificate: ", st.message());
    } else {
      results_.idle_tls.direct = MeasureIdle(false, true);
      results_.idle_tls.relay = MeasureIdle(true, true);
    }
  } else {
    results_.tls_skipped = "--notls";
  }
  for (IdleResult* r : {&results_.idle_plain.direct, &results_.idle_plain.relay,
                        &results_.idle_tls.direct, &results_.idle_tls.relay}) {
    if (!r->error.empty()) Problem(absl::StrCat("idle phase: ", r->error));
  }
  // Growth across rounds is the allocator's (and OpenSSL's) as long as the bare echo server
  // shows it too; clearly more than that points at the relay. TLS rounds are noisy (the second
  // round grows both servers by a third), hence the margin.
  for (const auto& [pair, transport] :
       {std::pair{&results_.idle_plain, "plaintext"}, std::pair{&results_.idle_tls, "tls"}}) {
    if (!pair->relay.ran || !pair->direct.ran || pair->relay.later_rounds.empty()) continue;
    double relay_growth = pair->relay.LastRoundGrowthKiB();
    double direct_growth = pair->direct.LastRoundGrowthKiB();
    if (relay_growth > 1.5 * std::max(0.0, direct_growth) + 1.0) {
      Problem(
          absl::StrFormat("%s: the relay's RSS grew %.2f KiB per listener in the last round "
                          "of reconnects, the echo server's %.2f KiB: memory the relay does "
                          "not reuse (leak?)",
                          transport, relay_growth, direct_growth));
    }
  }
  PrintReport(machine, command, s_, results_, absl::Now() - start);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------

std::string FindRelayBinary(const char* argv0) {
  std::vector<std::string> candidates;
  if (std::string flag = absl::GetFlag(FLAGS_relay_binary); !flag.empty()) return flag;
  if (const char* runfiles = std::getenv("RUNFILES_DIR")) {
    candidates.push_back(absl::StrCat(runfiles, "/tether/relay/relay_server"));
  }
  candidates.push_back(absl::StrCat(argv0, ".runfiles/tether/relay/relay_server"));
  candidates.push_back("relay/relay_server");  // bazel run's working directory
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return std::filesystem::absolute(c).string();
  }
  return "";
}

std::string SelfBinary(const char* argv0) {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(argv0) : path.string();
}

std::string CommandLine(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.push_back(ShellQuote(argv[i]));
  std::string line = absl::StrJoin(args, " ");
  if (std::getenv("BUILD_WORKSPACE_DIRECTORY") != nullptr) {
    std::vector<std::string> rest(args.begin() + 1, args.end());
    line = absl::StrCat("bazel run ",
#if defined(__OPTIMIZE__) && defined(NDEBUG)
                        "-c opt ",
#endif
                        "//tools/bench:relay_bench", rest.empty() ? "" : " -- ",
                        absl::StrJoin(rest, " "), "   [", line, "]");
  }
  return line;
}

// --serve_echo: the direct baseline server as a child process, until SIGTERM.
int ServeEcho() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto server = EchoServer::Start(std::max(1, absl::GetFlag(FLAGS_threads)),
                                  absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key));
  if (!server.ok()) {
    std::fprintf(stderr, "echo server: %s\n", std::string(server.status().message()).c_str());
    return 2;
  }
  std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << (*server)->port() << "\n";
    }
    if (rename(tmp.c_str(), port_file.c_str()) != 0) return 2;
  }
  int received = 0;
  sigwait(&signals, &received);
  return 0;
}

}  // namespace
}  // namespace tether::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Relay benchmark: latency, throughput and idle-listener memory of //relay:relay_server "
      "against a direct Beast WebSocket echo server (docs/BENCHMARKS.md).");
  tether::bench::NoteExplicitFlags(argc, argv);
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  if (absl::GetFlag(FLAGS_serve_echo)) return tether::bench::ServeEcho();

  auto settings = tether::bench::ResolveSettings();
  if (!settings.ok()) {
    std::fprintf(stderr, "relay_bench: %s\n", std::string(settings.status().message()).c_str());
    return 2;
  }
  std::string relay_binary = tether::bench::FindRelayBinary(argv[0]);
  if (relay_binary.empty()) {
    std::fprintf(stderr,
                 "relay_bench: relay_server not found; run with bazel run or pass "
                 "--relay_binary\n");
    return 2;
  }
  const char* tmp_root = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp_root ? tmp_root : "/tmp", "/relay_bench.XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "relay_bench: cannot create a temp dir\n");
    return 2;
  }
  std::string dir = pattern;

  tether::bench::Machine machine = tether::bench::DescribeMachine();
  std::string command = tether::bench::CommandLine(argc, argv);
  std::printf("relay_bench: %s\nmachine: %ld cores, %s, %s\nbuild: %s\ntemp dir: %s\n",
              command.c_str(), machine.cores, machine.cpu.c_str(), machine.kernel.c_str(),
#if defined(__OPTIMIZE__) && defined(NDEBUG)
              "optimized (-c opt)",
#else
              "NOT optimized: use bazel run -c opt for figures worth recording",
#endif
              dir.c_str());
  std::fflush(stdout);
  int rc = 0;
  {
    tether::bench::Bench bench(*settings, tether::bench::SelfBinary(argv[0]), relay_binary, dir);
    if (absl::Status st = bench.Setup(); !st.ok()) {
      std::fprintf(stderr, "relay_bench: %s\n", std::string(st.message()).c_str());
      rc = 2;
    } else {
      rc = bench.Run(machine, command);
    }
  }
  if (absl::GetFlag(FLAGS_keep_tmp)) {
    std::printf("kept %s\n", dir.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return rc;
}
