#include "agent/ledger.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tether::agent {
namespace {

std::string Dir(const std::string& name) { return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name); }

LedgerJob Accepted() {
  LedgerJob job;
  job.set_state(proto::JOB_STATE_ACCEPTED);
  job.set_run_id("run-1");
  return job;
}

proto::JobEvent Event(uint64_t seq) {
  proto::JobEvent event;
  event.set_job_id("job-1");
  event.set_seq(seq);
  event.mutable_log_line()->set_text(absl::StrCat("line ", seq));
  return event;
}

TEST(LedgerTest, AJobIdIsAcceptedOnce) {
  auto ledger = Ledger::Open(Dir("once"));
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ((*ledger)->Get("job-1").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE((*ledger)->Accept("job-1", Accepted()).ok());
  EXPECT_EQ((*ledger)->Accept("job-1", Accepted()).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*ledger)->Get("job-1")->run_id(), "run-1");
}

TEST(LedgerTest, EventsKeepTheirOrderAndPageBySize) {
  auto ledger = Ledger::Open(Dir("events"));
  ASSERT_TRUE((*ledger)->Accept("job-1", Accepted()).ok());
  for (uint64_t seq = 1; seq <= 5; ++seq) ASSERT_TRUE((*ledger)->AppendEvent("job-1", Event(seq)).ok());
  EXPECT_EQ((*ledger)->AppendEvent("job-1", Event(9)).code(), absl::StatusCode::kInternal);
  bool more = false;
  auto all = (*ledger)->Events("job-1", 2, 1 << 20, &more);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].seq(), 3u);
  EXPECT_FALSE(more);
  auto first = (*ledger)->Events("job-1", 0, 1, &more);  // one event fits at least
  ASSERT_EQ(first->size(), 1u);
  EXPECT_TRUE(more);
}

TEST(LedgerTest, ResultsSurviveARestartAndInterruptedJobsEndFailedNotRerun) {
  const std::string dir = Dir("restart");
  {
    auto ledger = Ledger::Open(dir);
    ASSERT_TRUE((*ledger)->Accept("done", Accepted()).ok());
    proto::JobResult result;
    result.set_job_id("done");
    result.set_state(proto::JOB_STATE_SUCCEEDED);
    (*result.mutable_outputs())["x"] = "1";
    ASSERT_TRUE((*ledger)->Finish("done", result).ok());
    ASSERT_TRUE((*ledger)->Accept("cut", Accepted()).ok());
    ASSERT_TRUE((*ledger)->SetState("cut", proto::JOB_STATE_RUNNING, 1234).ok());
  }
  auto ledger = Ledger::Open(dir);
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ((*ledger)->Get("done")->result().outputs().at("x"), "1");
  auto cut = (*ledger)->Get("cut");
  EXPECT_EQ(cut->state(), proto::JOB_STATE_FAILED);
  EXPECT_EQ(cut->result().error().message(), "interrupted: the agent stopped during the run");
  EXPECT_EQ((*ledger)->RecentResults(5).size(), 2u);
}

}  // namespace
}  // namespace tether::agent
