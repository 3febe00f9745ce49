#include "tools/bench/relay_report.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/base/log.h"

namespace tether::bench {
namespace {

// Targets of issue 3.
constexpr double kTargetLatencyRatio = 2.0;
constexpr double kTargetMessagesPerSecond = 50000;
constexpr double kTargetPlainKiB = 8;
constexpr double kTargetTlsKiB = 24;

std::string ReadFirstLine(const std::string& path, absl::string_view prefix = "") {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest(line);
    if (!absl::ConsumePrefix(&rest, prefix)) continue;
    if (!prefix.empty()) {
      std::size_t colon = rest.find(':');
      if (colon != absl::string_view::npos) rest = rest.substr(colon + 1);
    }
    return std::string(absl::StripAsciiWhitespace(rest));
  }
  return "";
}

std::string JsonString(absl::string_view s) { return absl::StrCat("\"", JsonEscape(s), "\""); }

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

std::string MetText(bool met) { return met ? "MET" : "MISSED"; }

struct LoadSummary {
  double echoes = 0;
  double server_cores = 0;
  double client_cores = 0;
  double other_cores = 0;
  int ok_reps = 0;
};

// The repetition with the median rate (its CPU figures come with it).
LoadSummary Summarize(const std::vector<LoadResult>& runs) {
  std::vector<LoadResult> ok;
  for (const LoadResult& r : runs) {
    if (r.ok) ok.push_back(r);
  }
  LoadSummary s;
  s.ok_reps = static_cast<int>(ok.size());
  if (ok.empty()) return s;
  std::sort(ok.begin(), ok.end(), [](const LoadResult& a, const LoadResult& b) {
    return a.echoes_per_second < b.echoes_per_second;
  });
  const LoadResult& median = ok[(ok.size() - 1) / 2];
  s.echoes = median.echoes_per_second;
  s.server_cores = median.server_cores;
  s.client_cores = median.client_cores;
  s.other_cores = median.other_cores;
  return s;
}

double Ratio(double a, double b) { return b > 0 ? a / b : NAN; }

}  // namespace

void PrintReport(const Machine& machine, const std::string& command, const Settings& settings,
                 const RelayBenchResults& results, absl::Duration elapsed) {
  const double mb = settings.message_bytes / 1e6;
  std::string date = absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::Now(), absl::UTCTimeZone());
  std::string load_end = ReadFirstLine("/proc/loadavg");

  std::printf(
      "\n================================ relay_bench results "
      "================================\n");
  std::printf("date      %s (run took %.0f s)\n", date.c_str(), absl::ToDoubleSeconds(elapsed));
  std::printf("machine   %ld cores, %s, %s, %s\n", machine.cores, machine.cpu.c_str(),
              machine.kernel.c_str(), machine.memory.c_str());
  std::printf("load avg  start %s | end %s (machine shared: figures are noisy)\n",
              machine.load_start.c_str(), load_end.c_str());
  std::printf("command   %s\n", command.c_str());
  std::printf(
      "setup     relay = //relay:relay_server child process (--threads=%d, plaintext "
      "loopback for [1][2]); direct = Beast echo server child process (%d threads); "
      "clients in this process on %d I/O thread(s); %d B messages\n",
      settings.server_threads, settings.server_threads, settings.client_threads,
      settings.message_bytes);

  const LatencyResult& ld = results.latency_direct;
  const LatencyResult& lr = results.latency_relay;
  double p50_ratio = Ratio(lr.p50, ld.p50);
  double p99_ratio = Ratio(lr.p99, ld.p99);
  bool latency_met = p50_ratio <= kTargetLatencyRatio;
  std::printf("\n[1] round-trip latency, 1 channel, %zu + %zu samples (pooled over %d rep(s))\n",
              ld.samples.size(), lr.samples.size(), settings.reps);
  std::printf("    %-22s %10s %10s\n", "", "p50", "p99");
  std::printf("    %-22s %8.1f us %8.1f us\n", "direct (echo server)", ld.p50, ld.p99);
  std::printf("    %-22s %8.1f us %8.1f us\n", "relay (via listener)", lr.p50, lr.p99);
  std::printf("    %-22s %9.2fx %9.2fx\n", "relay / direct", p50_ratio, p99_ratio);
  std::printf("    other processes used %.2f cores meanwhile\n", results.latency_other_cores);
  std::printf("    target: relay p50 <= %.0fx direct ........ %s (%.2fx)\n", kTargetLatencyRatio,
              MetText(latency_met).c_str(), p50_ratio);

  std::printf(
      "\n[2] throughput, %d B messages echoed, window %d per channel, median of %d "
      "rep(s) x %.1f s\n",
      settings.message_bytes, settings.window, settings.reps, settings.throughput_seconds);
  std::printf(
      "    echoes/s = round trips completed at the senders; MB/s = payload one way "
      "(x2 for both directions); relay fwd = messages the relay forwarded (both ways)\n");
  std::printf("    %8s | %9s %6s %6s %6s %6s %6s | %9s %6s %6s %6s %6s %6s | %6s | %10s\n",
              "channels", "direct/s", "MB/s", "srvCPU", "cliCPU", "other", "us/rt", "relay/s",
              "MB/s", "srvCPU", "cliCPU", "other", "us/rt", "r/d", "relay fwd/s");
  double best_forwarded = 0;
  int best_channels = 0;
  std::vector<std::string> throughput_json;
  for (const ThroughputRow& row : results.throughput) {
    LoadSummary d = Summarize(row.direct);
    LoadSummary r = Summarize(row.relay);
    double forwarded = 2 * r.echoes;
    if (forwarded > best_forwarded) {
      best_forwarded = forwarded;
      best_channels = row.channels;
    }
    std::printf(
        "    %8d | %9.0f %6.1f %6.2f %6.2f %6.2f %6.1f | %9.0f %6.1f %6.2f %6.2f %6.2f "
        "%6.1f | %5.2fx | %10.0f\n",
        row.channels, d.echoes, d.echoes * mb, d.server_cores, d.client_cores, d.other_cores,
        1e6 * Ratio(d.server_cores, d.echoes), r.echoes, r.echoes * mb, r.server_cores,
        r.client_cores, r.other_cores, 1e6 * Ratio(r.server_cores, r.echoes),
        Ratio(r.echoes, d.echoes), forwarded);
    throughput_json.push_back(absl::StrCat(
        "{\"channels\":", row.channels, ",\"direct_echoes_per_s\":", JsonNumber(d.echoes),
        ",\"direct_mb_per_s\":", JsonNumber(d.echoes * mb), ",\"direct_server_cores\":",
        JsonNumber(d.server_cores), ",\"direct_client_cores\":", JsonNumber(d.client_cores),
        ",\"relay_echoes_per_s\":", JsonNumber(r.echoes), ",\"relay_mb_per_s\":",
        JsonNumber(r.echoes * mb), ",\"relay_forwarded_per_s\":", JsonNumber(forwarded),
        ",\"relay_server_cores\":", JsonNumber(r.server_cores), ",\"relay_client_cores\":",
        JsonNumber(r.client_cores), ",\"direct_other_cores\":", JsonNumber(d.other_cores),
        ",\"relay_other_cores\":", JsonNumber(r.other_cores),
        ",\"direct_server_cpu_us_per_round_trip\":",
        JsonNumber(1e6 * Ratio(d.server_cores, d.echoes)),
        ",\"relay_server_cpu_us_per_round_trip\":",
        JsonNumber(1e6 * Ratio(r.server_cores, r.echoes)), ",\"ratio\":",
        JsonNumber(Ratio(r.echoes, d.echoes)), ",\"ok_reps\":[", d.ok_reps, ",", r.ok_reps, "]}"));
  }
  bool throughput_met = best_forwarded >= kTargetMessagesPerSecond;
  bool throughput_met_strict = best_forwarded / 2 >= kTargetMessagesPerSecond;
  std::printf(
      "    srvCPU/cliCPU/other: cores used by the server process / the clients / "
      "everything else on the machine (of %ld); us/rt: server CPU per round trip\n",
      machine.cores);
  std::printf(
      "    target: >= %.0f msg/s through one relay .. %s (%.0f forwarded msg/s at %d "
      "channels = %.0f round trips/s; counting round trips only: %s)\n",
      kTargetMessagesPerSecond, MetText(throughput_met).c_str(), best_forwarded, best_channels,
      best_forwarded / 2, MetText(throughput_met_strict).c_str());

  std::printf(
      "\n[3] resident memory per idle connection: "
      "(server VmRSS with N idle - before) / N\n");
  std::printf("    %-10s %-7s %7s %6s %9s %9s %9s %9s %11s %10s %9s\n", "transport", "server", "N",
              "failed", "before", "after", "KiB/conn", "anon KiB", "after close", "last round",
              "growth");
  auto idle_row = [&](const char* transport, const char* server, const IdleResult& r) {
    if (!r.ran) {
      std::printf("    %-10s %-7s not run%s%s\n", transport, server, r.error.empty() ? "" : ": ",
                  r.error.c_str());
      return;
    }
    std::string second =
        r.later_rounds.empty()
            ? "-"
            : absl::StrFormat("%5.1f MiB", r.later_rounds.back().vm_rss_kib / 1024.0);
    std::printf("    %-10s %-7s %7lld %6lld %5.1f MiB %5.1f MiB %9.2f %9.2f %7.1f MiB %10s %9.2f\n",
                transport, server, static_cast<long long>(r.connected),
                static_cast<long long>(r.failed), r.before.vm_rss_kib / 1024.0,
                r.after.vm_rss_kib / 1024.0, r.PerConnectionKiB(), r.PerConnectionAnonKiB(),
                r.after_close.vm_rss_kib / 1024.0, second.c_str(), r.LastRoundGrowthKiB());
  };
  idle_row("plaintext", "direct", results.idle_plain.direct);
  idle_row("plaintext", "relay", results.idle_plain.relay);
  idle_row("tls", "direct", results.idle_tls.direct);
  idle_row("tls", "relay", results.idle_tls.relay);
  std::printf(
      "    anon = RssAnon only; after close = RSS once all N closed; last round = RSS "
      "with N connected in round %d of %d on the same process; growth = its KiB/conn over the "
      "round before\n",
      settings.idle_rounds, settings.idle_rounds);
  if (!results.tls_skipped.empty())
    std::printf("    tls: skipped (%s)\n", results.tls_skipped.c_str());
  double plain_kib = results.idle_plain.relay.PerConnectionKiB();
  double tls_kib = results.idle_tls.relay.PerConnectionKiB();
  bool plain_met = results.idle_plain.relay.ran && results.idle_plain.relay.connected > 0 &&
                   plain_kib <= kTargetPlainKiB;
  bool tls_met = results.idle_tls.relay.ran && results.idle_tls.relay.connected > 0 &&
                 tls_kib <= kTargetTlsKiB;
  std::printf("    relay / direct per connection: plaintext %.2fx, tls %.2fx\n",
              Ratio(plain_kib, results.idle_plain.direct.PerConnectionKiB()),
              Ratio(tls_kib, results.idle_tls.direct.PerConnectionKiB()));
  std::printf("    target: <= %.0f KiB per idle plaintext listener  %s (%.2f KiB)\n",
              kTargetPlainKiB, MetText(plain_met).c_str(), plain_kib);
  if (results.idle_tls.relay.ran) {
    std::printf("    target: <= %.0f KiB per idle TLS listener ....  %s (%.2f KiB)\n",
                kTargetTlsKiB, MetText(tls_met).c_str(), tls_kib);
  } else {
    std::printf("    target: <= %.0f KiB per idle TLS listener ....  NOT MEASURED\n",
                kTargetTlsKiB);
  }

  if (!results.notes.empty()) {
    std::printf("\nnotes\n");
    for (const std::string& n : results.notes) std::printf("  - %s\n", n.c_str());
  }
  std::printf("\nproblems: %s\n", results.problems.empty() ? "none" : "");
  for (const std::string& p : results.problems) std::printf("  ! %s\n", p.c_str());

  // Machine-readable summary, one line.
  auto idle_json = [](const IdleResult& r) {
    if (!r.ran) return std::string("null");
    return absl::StrCat(
        "{\"n\":", r.connected, ",\"failed\":", r.failed, ",\"dropped\":", r.disconnected,
        ",\"connect_s\":", JsonNumber(r.connect_seconds),
        ",\"rss_before_kib\":", r.before.vm_rss_kib, ",\"rss_after_kib\":", r.after.vm_rss_kib,
        ",\"rss_after_close_kib\":", r.after_close.vm_rss_kib, ",\"rss_later_rounds_kib\":[",
        absl::StrJoin(
            r.later_rounds, ",",
            [](std::string* out, const ProcessMemory& m) { absl::StrAppend(out, m.vm_rss_kib); }),
        "]", ",\"kib_per_conn\":", JsonNumber(r.PerConnectionKiB()),
        ",\"last_round_growth_kib_per_conn\":", JsonNumber(r.LastRoundGrowthKiB()),
        ",\"anon_kib_per_conn\":", JsonNumber(r.PerConnectionAnonKiB()), "}");
  };
  std::vector<std::string> problem_json;
  for (const std::string& p : results.problems) problem_json.push_back(JsonString(p));
  std::string json = absl::StrCat(
      "{\"bench\":\"relay_bench\",\"date\":", JsonString(date),
      ",\"elapsed_s\":", JsonNumber(absl::ToDoubleSeconds(elapsed)),
      ",\"machine\":{\"cores\":", machine.cores, ",\"cpu\":", JsonString(machine.cpu),
      ",\"kernel\":", JsonString(machine.kernel), ",\"memory\":", JsonString(machine.memory),
      ",\"loadavg_start\":", JsonString(machine.load_start),
      ",\"loadavg_end\":", JsonString(load_end), "}", ",\"command\":", JsonString(command),
      ",\"config\":{\"server_threads\":", settings.server_threads,
      ",\"client_threads\":", settings.client_threads, ",\"reps\":", settings.reps,
      ",\"message_bytes\":", settings.message_bytes, ",\"window\":", settings.window,
      ",\"relay_listeners\":", settings.relay_listeners,
      ",\"quick\":", settings.quick ? "true" : "false", ",\"relay\":\"process\"}",
      ",\"latency_us\":{\"direct\":{\"p50\":", JsonNumber(ld.p50), ",\"p99\":", JsonNumber(ld.p99),
      ",\"n\":", ld.samples.size(), "},\"relay\":{\"p50\":", JsonNumber(lr.p50),
      ",\"p99\":", JsonNumber(lr.p99), ",\"n\":", lr.samples.size(),
      "},\"ratio_p50\":", JsonNumber(p50_ratio), ",\"ratio_p99\":", JsonNumber(p99_ratio),
      ",\"other_cores\":", JsonNumber(results.latency_other_cores), "}", ",\"throughput\":[",
      absl::StrJoin(throughput_json, ","), "]",
      ",\"idle_memory\":{\"plaintext\":{\"direct\":", idle_json(results.idle_plain.direct),
      ",\"relay\":", idle_json(results.idle_plain.relay),
      "},\"tls\":{\"direct\":", idle_json(results.idle_tls.direct),
      ",\"relay\":", idle_json(results.idle_tls.relay), "}}",
      ",\"targets\":{\"latency_p50_ratio_le_2\":{\"value\":", JsonNumber(p50_ratio),
      ",\"met\":", latency_met ? "true" : "false",
      "},\"relay_forwarded_msgs_per_s_ge_50000\":{\"value\":", JsonNumber(best_forwarded),
      ",\"met\":", throughput_met ? "true" : "false",
      ",\"met_counting_round_trips\":", throughput_met_strict ? "true" : "false",
      "},\"plain_kib_per_idle_listener_le_8\":{\"value\":", JsonNumber(plain_kib),
      ",\"met\":", plain_met ? "true" : "false",
      "},\"tls_kib_per_idle_listener_le_24\":{\"value\":",
      results.idle_tls.relay.ran ? JsonNumber(tls_kib) : "null",
      ",\"met\":", results.idle_tls.relay.ran ? (tls_met ? "true" : "false") : "null", "}}",
      ",\"problems\":[", absl::StrJoin(problem_json, ","), "]}");
  std::printf("\n%s\n", json.c_str());
  std::fflush(stdout);
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  // Nearest rank.
  std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * values.size()));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

Machine DescribeMachine() {
  Machine m;
  m.cores = sysconf(_SC_NPROCESSORS_ONLN);
  m.cpu = ReadFirstLine("/proc/cpuinfo", "model name");
  utsname u{};
  if (uname(&u) == 0) m.kernel = absl::StrCat(u.sysname, " ", u.release, " ", u.machine);
  m.memory = ReadFirstLine("/proc/meminfo", "MemTotal");
  m.load_start = ReadFirstLine("/proc/loadavg");
  return m;
}

std::string RoundsText(const IdleResult& r) {
  if (r.later_rounds.empty()) return "";
  std::vector<std::string> parts;
  for (const ProcessMemory& m : r.later_rounds) {
    parts.push_back(absl::StrFormat("%.1f", m.vm_rss_kib / 1024.0));
  }
  return absl::StrCat("; rounds 2..", r.later_rounds.size() + 1, ": ", absl::StrJoin(parts, ", "),
                      " MiB");
}

}  // namespace tether::bench
