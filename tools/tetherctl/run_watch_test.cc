#include "tools/tetherctl/run_watch.h"

#include <sstream>

#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace tether::tetherctl {
namespace {

proto::RunEvent StateEvent(uint64_t seq, proto::RunState state, const std::string& detail) {
  proto::RunEvent event;
  event.set_run_id("run-1");
  event.set_seq(seq);
  proto::Run* run = event.mutable_state_changed();
  run->set_run_id("run-1");
  run->set_state(state);
  run->set_state_detail(detail);
  return event;
}

proto::RunEvent JobEventOf(uint64_t seq, const std::function<void(proto::JobEvent&)>& fill) {
  proto::RunEvent event;
  event.set_run_id("run-1");
  event.set_seq(seq);
  fill(*event.mutable_job_event());
  return event;
}

TEST(ExitCodeForRunStateTest, FailedIsFiveCancelledAndTimedOutAreSix) {
  EXPECT_EQ(ExitCodeForRunState(proto::RUN_STATE_SUCCEEDED), 0);
  EXPECT_EQ(ExitCodeForRunState(proto::RUN_STATE_FAILED), 5);
  EXPECT_EQ(ExitCodeForRunState(proto::RUN_STATE_CANCELLED), 6);
  EXPECT_EQ(ExitCodeForRunState(proto::RUN_STATE_TIMED_OUT), 6);
  EXPECT_FALSE(IsTerminal(proto::RUN_STATE_RUNNING));
  EXPECT_TRUE(IsTerminal(proto::RUN_STATE_TIMED_OUT));
}

TEST(RunEventPrinterTest, PrintsOneLinePerProgressStepAndASummary) {
  std::ostringstream out;
  RunEventPrinter printer(out, /*json=*/false);
  std::vector<proto::RunEvent> events = {
      StateEvent(1, proto::RUN_STATE_QUEUED, "queued"),
      StateEvent(2, proto::RUN_STATE_QUEUED, "queued"),  // no visible change: not repeated
      StateEvent(3, proto::RUN_STATE_RUNNING, "running on m-1"),
      JobEventOf(4, [](proto::JobEvent& e) {
        e.mutable_action_started()->set_index(0);
        e.mutable_action_started()->set_name("System.RunApplication");
      }),
      JobEventOf(5, [](proto::JobEvent& e) {
        e.mutable_log_line()->set_stream(proto::JobEvent::LogLine::STREAM_STDERR);
        e.mutable_log_line()->set_text("warning: x");
      }),
      JobEventOf(6, [](proto::JobEvent& e) {
        auto* f = e.mutable_action_finished();
        f->set_index(0);
        f->set_name("System.RunApplication");
        f->set_ok(false);
        f->set_message("exit code 2");
        f->set_duration_ms(1500);
      }),
  };
  proto::RunEvent last = StateEvent(7, proto::RUN_STATE_FAILED, "failed");
  proto::Run* run = last.mutable_state_changed();
  run->set_started_at_unix_ms(10'000);
  run->set_finished_at_unix_ms(12'000);
  run->mutable_error()->set_message("exit code 2");
  run->mutable_error()->set_action_index(0);
  run->mutable_error()->set_action_name("System.RunApplication");
  run->mutable_error()->set_action_path("$.actions[0]");
  (*run->mutable_outputs())["b"] = "2";
  (*run->mutable_outputs())["a"] = "1";
  events.push_back(last);
  for (const proto::RunEvent& event : events) ASSERT_TRUE(printer.Print(event).ok());

  EXPECT_EQ(out.str(),
            "run-1 queued\n"
            "run-1 running: running on m-1\n"
            "[0] System.RunApplication started\n"
            "stderr: warning: x\n"
            "[0] System.RunApplication fail (1.5s): exit code 2\n"
            "run-1 failed in 2.0s: exit code 2 (action [0] System.RunApplication at $.actions[0])\n"
            "outputs:\n"
            "  a = 1\n"
            "  b = 2\n");
  ASSERT_TRUE(printer.run().has_value());
  EXPECT_EQ(printer.run()->state(), proto::RUN_STATE_FAILED);
}

TEST(RunEventPrinterTest, JsonModePrintsOneParsableEventPerLine) {
  std::ostringstream out;
  RunEventPrinter printer(out, /*json=*/true);
  ASSERT_TRUE(printer.Print(StateEvent(1, proto::RUN_STATE_QUEUED, "queued")).ok());
  ASSERT_TRUE(printer.Print(JobEventOf(2, [](proto::JobEvent& e) {
                e.mutable_output()->set_name("result");
                e.mutable_output()->set_value("ok");
              })).ok());
  std::istringstream lines(out.str());
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    proto::RunEvent parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
    EXPECT_EQ(parsed.seq(), static_cast<uint64_t>(++count));
  }
  EXPECT_EQ(count, 2);
  EXPECT_EQ(printer.run()->state(), proto::RUN_STATE_QUEUED);
}

}  // namespace
}  // namespace tether::tetherctl
