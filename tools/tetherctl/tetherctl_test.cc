// tetherctl against the real cloud_server (a child process): login and the config file, users and
// tokens, machines, groups (the password never leaves), connections (sealed here to the machine's
// key), flows, --json, exit codes. Runs are in tetherctl_run_test.cc.
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/hex.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/crypto/digest.h"
#include "common/crypto/dev_certs.h"
#include "common/crypto/password_kdf.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tools/tetherctl/test_support.h"

namespace tether::tetherctl {
namespace {

using ::tether::tetherctl::testing::Cli;
using ::tether::tetherctl::testing::CliResult;
using ::tether::tetherctl::testing::CloudOptions;
using ::tether::tetherctl::testing::CloudProcess;
using ::tether::tetherctl::testing::NewTempDir;
using ::tether::tetherctl::testing::ScriptedPrompt;
using ::tether::tetherctl::testing::WriteFile;

std::string Describe(const CliResult& r) {
  return absl::StrCat("exit ", r.exit_code, "\nstdout: ", r.out, "\nstderr: ", r.err);
}

// One line on stderr, "tetherctl: ...".
void ExpectOneErrorLine(const CliResult& r, absl::string_view contains) {
  EXPECT_TRUE(absl::StartsWith(r.err, "tetherctl: ")) << Describe(r);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Describe(r);
  EXPECT_NE(r.err.find(std::string(contains)), std::string::npos) << Describe(r);
}

template <typename Message>
Message ParseJson(const std::string& text) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(text, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << text;
  return message;
}

std::string SecretFile(absl::string_view content) {
  std::string path = absl::StrCat(NewTempDir("secret"), "/secret");
  EXPECT_TRUE(WriteFile(path, content, 0600).ok());
  return path;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

constexpr char kEchoFlow[] = R"({
  "name": "Echo",
  "inputs": [{"name": "Greeting", "type": "text", "default": "hi"}],
  "outputs": [{"name": "Greeting"}],
  "actions": [{"action": "Variables.SetVariable", "variable": "Copy", "value": "%Greeting%"}]
})";

class TetherctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CloudOptions options;
    options.users = {{"alice", true}, {"bob", false}};
    auto cloud = CloudProcess::Start(options);
    ASSERT_TRUE(cloud.ok()) << cloud.status();
    cloud_ = *std::move(cloud);
    alice_ = std::make_unique<Cli>(absl::StrCat(NewTempDir("alice"), "/conf/tetherctl.conf"));
    bob_ = std::make_unique<Cli>(absl::StrCat(NewTempDir("bob"), "/tetherctl.conf"));
  }

  void LoginBoth() {
    CliResult a = alice_->Login(cloud_->address(), cloud_->token("alice"));
    ASSERT_EQ(a.exit_code, 0) << Describe(a);
    CliResult b = bob_->Login(cloud_->address(), cloud_->token("bob"));
    ASSERT_EQ(b.exit_code, 0) << Describe(b);
  }

  std::unique_ptr<CloudProcess> cloud_;
  std::unique_ptr<Cli> alice_;
  std::unique_ptr<Cli> bob_;
};

TEST_F(TetherctlTest, LoginWritesPrivateConfigThatLaterCommandsUse) {
  CliResult login = alice_->Login(cloud_->address(), cloud_->token("alice"));
  ASSERT_EQ(login.exit_code, 0) << Describe(login);
  EXPECT_NE(login.out.find("logged in to " + cloud_->address() + " as alice"), std::string::npos)
      << Describe(login);
  EXPECT_EQ(ModeOf(alice_->config_file()), 0600u);
  EXPECT_EQ(login.out.find(cloud_->token("alice")), std::string::npos) << "the token was echoed";

  CliResult who = alice_->Run({"whoami"});
  ASSERT_EQ(who.exit_code, 0) << Describe(who);
  EXPECT_TRUE(absl::StartsWith(who.out, "alice (u-")) << who.out;
  EXPECT_NE(who.out.find("admin"), std::string::npos);
}

TEST_F(TetherctlTest, ConfigReadableByOthersIsRefused) {
  ASSERT_EQ(alice_->Login(cloud_->address(), cloud_->token("alice")).exit_code, 0);
  ASSERT_EQ(chmod(alice_->config_file().c_str(), 0644), 0);
  CliResult who = alice_->Run({"whoami"});
  EXPECT_EQ(who.exit_code, 1) << Describe(who);
  ExpectOneErrorLine(who, "0644");

  ASSERT_EQ(chmod(alice_->config_file().c_str(), 0600), 0);
  EXPECT_EQ(alice_->Run({"whoami"}).exit_code, 0);
}

TEST_F(TetherctlTest, BadTokenIsExit3AndSavesNothing) {
  const std::string token_file = SecretFile("tt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
  CliResult login = alice_->Run(
      {"login", "--cloud", cloud_->address(), "--insecure", "--token-file", token_file});
  EXPECT_EQ(login.exit_code, 3) << Describe(login);
  ExpectOneErrorLine(login, "tetherctl: login: ");
  EXPECT_EQ(ModeOf(alice_->config_file()), 0u) << "a config was written for a refused token";

  // A saved token that was revoked since is exit 3 too.
  ASSERT_EQ(alice_->Login(cloud_->address(), cloud_->token("alice")).exit_code, 0);
  CliResult made = alice_->Run({"tokens", "create", "--label", "laptop"});
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  const std::string second_token(absl::StripAsciiWhitespace(made.out));
  Cli laptop(absl::StrCat(NewTempDir("laptop"), "/tetherctl.conf"));
  ASSERT_EQ(laptop.Login(cloud_->address(), second_token).exit_code, 0);
  CliResult tokens = alice_->Run({"--json", "tokens", "list"});
  ASSERT_EQ(tokens.exit_code, 0) << Describe(tokens);
  auto listed = ParseJson<proto::ListTokensResponse>(tokens.out);
  std::string laptop_id;
  for (const auto& token : listed.tokens()) {
    if (token.label() == "laptop") laptop_id = token.token_id();
  }
  ASSERT_FALSE(laptop_id.empty()) << tokens.out;
  EXPECT_NE(alice_->Run({"tokens", "list"}).out.find("laptop"), std::string::npos);
  ASSERT_EQ(alice_->Run({"tokens", "revoke", laptop_id}).exit_code, 0);
  CliResult revoked = laptop.Run({"whoami"});
  EXPECT_EQ(revoked.exit_code, 3) << Describe(revoked);
  ExpectOneErrorLine(revoked, "whoami: ");
}

TEST_F(TetherctlTest, TokenComesFromAFileOrATerminalNeverAFlag) {
  // stdin is not a terminal and no --token-file: asked for the file.
  CliResult no_file = alice_->Run({"login", "--cloud", cloud_->address(), "--insecure"});
  EXPECT_EQ(no_file.exit_code, 1) << Describe(no_file);
  ExpectOneErrorLine(no_file, "--token-file");

  CliResult flag = alice_->Run(
      {"login", "--cloud", cloud_->address(), "--insecure", "--token", cloud_->token("alice")});
  EXPECT_EQ(flag.exit_code, 1) << Describe(flag);
  EXPECT_EQ(ModeOf(alice_->config_file()), 0u);

  // A token file others may read is refused (it is a bearer credential).
  const std::string open_file = SecretFile(cloud_->token("alice"));
  ASSERT_EQ(chmod(open_file.c_str(), 0644), 0);
  CliResult open = alice_->Run(
      {"login", "--cloud", cloud_->address(), "--insecure", "--token-file", open_file});
  EXPECT_EQ(open.exit_code, 1) << Describe(open);
  ExpectOneErrorLine(open, "chmod 600");

  // On a terminal the token is prompted for.
  auto prompts = std::make_shared<std::vector<std::string>>();
  CliResult typed = alice_->Run({"login", "--cloud", cloud_->address(), "--insecure"},
                                ScriptedPrompt({cloud_->token("alice")}, prompts));
  EXPECT_EQ(typed.exit_code, 0) << Describe(typed);
  ASSERT_EQ(prompts->size(), 1u);
  EXPECT_NE((*prompts)[0].find("token"), std::string::npos);
  EXPECT_EQ(alice_->Run({"whoami"}).exit_code, 0);
}

TEST_F(TetherctlTest, InsecureIsForLoopbackAndAnUnreachableCloudIsExit4) {
  const std::string token_file = SecretFile(cloud_->token("alice"));
  CliResult remote = alice_->Run(
      {"login", "--cloud", "192.0.2.1:8443", "--insecure", "--token-file", token_file});
  EXPECT_EQ(remote.exit_code, 1) << Describe(remote);
  ExpectOneErrorLine(remote, "loopback");

  CliResult both = alice_->Run({"login", "--cloud", cloud_->address(), "--insecure", "--ca",
                                token_file, "--token-file", token_file});
  EXPECT_EQ(both.exit_code, 1) << Describe(both);

  // Port 1 on loopback: nothing listens there.
  CliResult unreachable = alice_->Run(
      {"login", "--cloud", "127.0.0.1:1", "--insecure", "--token-file", token_file});
  EXPECT_EQ(unreachable.exit_code, 4) << Describe(unreachable);
  ExpectOneErrorLine(unreachable, "unreachable");
}

TEST_F(TetherctlTest, UsersCreatePrintsTheTokenOnceAndNeedsAnAdmin) {
  LoginBoth();
  CliResult made = alice_->Run({"users", "create", "carol"});
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  const std::string carol_token(absl::StripAsciiWhitespace(made.out));
  EXPECT_TRUE(absl::StartsWith(carol_token, "tt_")) << made.out;
  Cli carol(absl::StrCat(NewTempDir("carol"), "/tetherctl.conf"));
  ASSERT_EQ(carol.Login(cloud_->address(), carol_token).exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(carol.Run({"whoami"}).out, "carol ("));

  CliResult again = alice_->Run({"users", "create", "carol"});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);  // ALREADY_EXISTS
  CliResult not_admin = bob_->Run({"users", "create", "dave"});
  EXPECT_EQ(not_admin.exit_code, 3) << Describe(not_admin);  // PERMISSION_DENIED
  ExpectOneErrorLine(not_admin, "users create: ");
}

TEST_F(TetherctlTest, MachinesListShowShareAndJson) {
  LoginBoth();
  auto desk = testing::RegisterMachine(cloud_->address(), cloud_->token("alice"), "desk");
  ASSERT_TRUE(desk.ok()) << desk.status();

  CliResult list = alice_->Run({"machines", "list"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_NE(list.out.find((*desk)->id()), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("desk"), std::string::npos) << list.out;
  // The relay of this test cloud is unreachable, so presence is not known.
  EXPECT_NE(list.out.find("unknown"), std::string::npos) << list.out;

  CliResult json = alice_->Run({"--json", "machines", "list"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  auto parsed = ParseJson<proto::ListMachinesResponse>(json.out);
  ASSERT_EQ(parsed.machines_size(), 1);
  EXPECT_EQ(parsed.machines(0).machine_id(), (*desk)->id());
  EXPECT_EQ(parsed.machines(0).x25519_pub(), (*desk)->x25519.public_key);

  // By name as well as by id; the key id shown is the one connections are sealed to.
  CliResult show = alice_->Run({"machines", "show", "desk"});
  ASSERT_EQ(show.exit_code, 0) << Describe(show);
  EXPECT_NE(show.out.find(HexEncode(crypto::KeyId((*desk)->x25519.public_key))), std::string::npos)
      << show.out;

  // Bob sees nothing until it is shared with him.
  EXPECT_EQ(bob_->Run({"machines", "show", (*desk)->id()}).exit_code, 2);
  CliResult shared = alice_->Run({"machines", "share", "desk", "bob", "--role", "user"});
  ASSERT_EQ(shared.exit_code, 0) << Describe(shared);
  CliResult bob_list = bob_->Run({"machines", "list"});
  EXPECT_NE(bob_list.out.find((*desk)->id()), std::string::npos) << Describe(bob_list);
  CliResult bob_delete = bob_->Run({"machines", "delete", (*desk)->id()});
  EXPECT_EQ(bob_delete.exit_code, 3) << Describe(bob_delete);  // a user-role share cannot delete
  EXPECT_EQ(alice_->Run({"machines", "share", "desk", "bob", "--role", "boss"}).exit_code, 1);
  ASSERT_EQ(alice_->Run({"machines", "unshare", "desk", "bob"}).exit_code, 0);
  EXPECT_EQ(bob_->Run({"machines", "show", (*desk)->id()}).exit_code, 2);

  CliResult deleted = alice_->Run({"machines", "delete", "desk"});
  ASSERT_EQ(deleted.exit_code, 0) << Describe(deleted);
  EXPECT_EQ(alice_->Run({"machines", "show", (*desk)->id()}).exit_code, 2);
}

TEST_F(TetherctlTest, ConnectionsCreateSealsToTheMachineKey) {
  LoginBoth();
  auto desk = testing::RegisterMachine(cloud_->address(), cloud_->token("alice"), "desk");
  ASSERT_TRUE(desk.ok()) << desk.status();
  const std::string password_file = SecretFile("correct horse battery\n");

  CliResult made = alice_->Run({"--json", "connections", "create", "desk-alice", "--machine",
                                (*desk)->id(), "--username", "alice", "--password-file",
                                password_file});
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  EXPECT_EQ(made.out.find("correct horse"), std::string::npos);
  auto connection = ParseJson<proto::Connection>(made.out);
  EXPECT_EQ(connection.target().machine_id(), (*desk)->id());
  EXPECT_EQ(connection.username(), "alice");
  EXPECT_EQ(connection.mode(), proto::RUN_MODE_UNATTENDED);
  EXPECT_EQ(connection.recipient_key_id(), crypto::KeyId((*desk)->x25519.public_key));
  EXPECT_EQ(connection.connection_id().size(), 32u);
  EXPECT_EQ(connection.connection_id().find_first_not_of("0123456789abcdef"), std::string::npos);

  // What the cloud keeps agrees, found by name too.
  CliResult shown = alice_->Run({"--json", "connections", "show", "desk-alice"});
  ASSERT_EQ(shown.exit_code, 0) << Describe(shown);
  auto stored = ParseJson<proto::Connection>(shown.out);
  EXPECT_EQ(stored.connection_id(), connection.connection_id());
  EXPECT_EQ(stored.recipient_key_id(), crypto::KeyId((*desk)->x25519.public_key));
  CliResult listed = alice_->Run({"connections", "list"});
  EXPECT_NE(listed.out.find("desk-alice"), std::string::npos) << Describe(listed);

  // Attended, with the password typed at a (scripted) terminal.
  auto prompts = std::make_shared<std::vector<std::string>>();
  CliResult typed = alice_->Run({"--json", "connections", "create", "desk-attended", "--machine", "desk",
                                 "--username", "alice", "--attended"},
                                ScriptedPrompt({"typed password"}, prompts));
  ASSERT_EQ(typed.exit_code, 0) << Describe(typed);
  EXPECT_EQ(ParseJson<proto::Connection>(typed.out).mode(), proto::RUN_MODE_ATTENDED);
  ASSERT_EQ(prompts->size(), 1u);
  EXPECT_NE((*prompts)[0].find("password for alice"), std::string::npos);

  // A name already used: exit 1 (ALREADY_EXISTS).
  CliResult duplicate = alice_->Run({"connections", "create", "desk-alice", "--machine", (*desk)->id(),
                                     "--username", "alice", "--password-file", password_file});
  EXPECT_EQ(duplicate.exit_code, 1) << Describe(duplicate);
  ExpectOneErrorLine(duplicate, "desk-alice");

  // An unknown machine: exit 2, and no password is asked for.
  CliResult unknown = alice_->Run({"connections", "create", "nowhere", "--machine", "m-doesnotexist",
                                   "--username", "alice"},
                                  ScriptedPrompt({}));
  EXPECT_EQ(unknown.exit_code, 2) << Describe(unknown);
  ExpectOneErrorLine(unknown, "m-doesnotexist");

  // Two targets, or none: usage.
  EXPECT_EQ(alice_->Run({"connections", "create", "x", "--machine", "desk", "--group", "g",
                         "--username", "alice", "--password-file", password_file})
                .exit_code,
            1);

  CliResult deleted = alice_->Run({"connections", "delete", "desk-alice"});
  ASSERT_EQ(deleted.exit_code, 0) << Describe(deleted);
  EXPECT_EQ(alice_->Run({"connections", "show", connection.connection_id()}).exit_code, 2);
}

TEST_F(TetherctlTest, GroupsCreateKeepsThePasswordAndPrivateKeyHere) {
  LoginBoth();
  const std::string password_file = SecretFile("group pass phrase\n");
  CliResult made = alice_->Run({"--json", "groups", "create", "lab", "--password-file", password_file});
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  auto group = ParseJson<proto::MachineGroup>(made.out);
  EXPECT_EQ(group.name(), "lab");
  EXPECT_EQ(group.group_pub().size(), 32u);

  CliResult shown = alice_->Run({"groups", "show", "lab"});
  ASSERT_EQ(shown.exit_code, 0) << Describe(shown);
  EXPECT_NE(shown.out.find(group.group_id()), std::string::npos);
  EXPECT_NE(alice_->Run({"groups", "list"}).out.find("lab"), std::string::npos);

  // A machine joining gets the wrapped key, which opens with the password only, to the group's key.
  auto desk = testing::RegisterMachine(cloud_->address(), cloud_->token("alice"), "desk");
  ASSERT_TRUE(desk.ok()) << desk.status();
  proto::JoinGroupRequest join;
  join.set_group_id(group.group_id());
  ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.GroupService/JoinGroup", (*desk)->id(),
                                    (*desk)->ed25519.private_key, WallNow(), &join)
                  .ok());
  proto::JoinGroupResponse joined;
  auto groups = proto::GroupService::NewStub(testing::CloudChannel(cloud_->address()));
  grpc::Status status =
      groups->JoinGroup(testing::UserContext(cloud_->token("alice")).get(), join, &joined);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto private_key = crypto::UnwrapWithPassword(joined.wrapped_priv(), crypto::SecretBytes("group pass phrase"));
  ASSERT_TRUE(private_key.ok()) << private_key.status();
  EXPECT_EQ(*crypto::X25519PublicKey(*private_key), group.group_pub());
  EXPECT_EQ(crypto::UnwrapWithPassword(joined.wrapped_priv(), crypto::SecretBytes("group pass"))
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);

  // Typed: twice, and two different entries are refused before anything is sent.
  CliResult mismatch = alice_->Run({"groups", "create", "lab2"}, ScriptedPrompt({"one", "two"}));
  EXPECT_EQ(mismatch.exit_code, 1) << Describe(mismatch);
  ExpectOneErrorLine(mismatch, "differ");
  EXPECT_EQ(alice_->Run({"groups", "show", "lab2"}).exit_code, 2);
  CliResult typed = alice_->Run({"groups", "create", "lab2"}, ScriptedPrompt({"same", "same"}));
  EXPECT_EQ(typed.exit_code, 0) << Describe(typed);

  // A connection to the group is sealed to the group key.
  CliResult connection = alice_->Run({"--json", "connections", "create", "lab-alice", "--group", "lab",
                                      "--username", "alice", "--password-file", password_file});
  ASSERT_EQ(connection.exit_code, 0) << Describe(connection);
  EXPECT_EQ(ParseJson<proto::Connection>(connection.out).recipient_key_id(), crypto::KeyId(group.group_pub()));
}

TEST_F(TetherctlTest, FlowsCreateShowUpdateAndErrorsWithTheJsonPath) {
  LoginBoth();
  const std::string dir = NewTempDir("flows");
  ASSERT_TRUE(WriteFile(dir + "/echo.json", kEchoFlow, 0644).ok());
  ASSERT_TRUE(WriteFile(dir + "/bad.json",
                        R"({"name": "Bad", "actions": [
                              {"action": "Variables.SetVariable", "variable": "A", "value": "1"},
                              {"action": "File.Delete", "path": "/tmp/x"}]})",
                        0644)
                  .ok());

  CliResult bad = alice_->Run({"flows", "create", "Bad", "--file", dir + "/bad.json"});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  ExpectOneErrorLine(bad, "$.actions[1]");
  EXPECT_NE(bad.err.find("unknown action"), std::string::npos) << bad.err;

  CliResult made = alice_->Run({"flows", "create", "Echo", "--file", dir + "/echo.json"});
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  EXPECT_NE(made.out.find("version 1"), std::string::npos) << made.out;
  CliResult shown = alice_->Run({"flows", "show", "Echo"});
  ASSERT_EQ(shown.exit_code, 0) << Describe(shown);
  EXPECT_EQ(shown.out, std::string(kEchoFlow) + "\n");

  ASSERT_TRUE(WriteFile(dir + "/echo2.json", R"({"name": "Echo", "actions": []})", 0644).ok());
  CliResult updated = alice_->Run({"flows", "update", "Echo", "--file", dir + "/echo2.json"});
  ASSERT_EQ(updated.exit_code, 0) << Describe(updated);
  EXPECT_NE(updated.out.find("version 2"), std::string::npos) << updated.out;
  CliResult v1 = alice_->Run({"--json", "flows", "show", "Echo", "--version", "1"});
  ASSERT_EQ(v1.exit_code, 0) << Describe(v1);
  auto flow = ParseJson<proto::Flow>(v1.out);
  EXPECT_EQ(flow.version(), 1u);
  EXPECT_EQ(flow.definition_json(), kEchoFlow);
  EXPECT_EQ(alice_->Run({"flows", "show", "Echo", "--version", "9"}).exit_code, 2);
  CliResult list = alice_->Run({"flows", "list"});
  EXPECT_NE(list.out.find("Echo"), std::string::npos) << Describe(list);

  // Bob cannot see Alice's flow; a missing file is a usage error.
  EXPECT_EQ(bob_->Run({"flows", "show", flow.flow_id()}).exit_code, 2);
  EXPECT_EQ(alice_->Run({"flows", "create", "X", "--file", dir + "/absent.json"}).exit_code, 1);
}

TEST_F(TetherctlTest, HelpAndUsageErrors) {
  CliResult help = alice_->Run({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("connections create"), std::string::npos);
  CliResult command_help = alice_->Run({"run", "--help"});
  EXPECT_EQ(command_help.exit_code, 0);
  EXPECT_NE(command_help.out.find("--connection C"), std::string::npos);
  EXPECT_EQ(alice_->Run({"help", "machines"}).exit_code, 0);

  CliResult unknown = alice_->Run({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 1);
  ExpectOneErrorLine(unknown, "unknown command");
  CliResult missing = alice_->Run({"machines"});
  EXPECT_EQ(missing.exit_code, 1);
  ExpectOneErrorLine(missing, "list");
  CliResult arguments = alice_->Run({"machines", "show"});
  EXPECT_EQ(arguments.exit_code, 1);
  ExpectOneErrorLine(arguments, "usage: tetherctl machines show ID");
  CliResult not_logged_in = alice_->Run({"machines", "list"});
  EXPECT_EQ(not_logged_in.exit_code, 3);
  ExpectOneErrorLine(not_logged_in, "tetherctl login");
}

// The binary itself: main.cc hands the process's streams over, and a non-terminal stdin never
// prompts.
TEST_F(TetherctlTest, BinaryAsksForTokenFileWhenStdinIsNotATerminal) {
  const std::string config = absl::StrCat(NewTempDir("binary"), "/tetherctl.conf");
  auto result = testing::RunProcess({"tools/tetherctl/tetherctl", "--config", config, "login", "--cloud",
                                     cloud_->address(), "--insecure"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 1) << result->err;
  EXPECT_NE(result->err.find("--token-file"), std::string::npos) << result->err;

  const std::string token_file = SecretFile(cloud_->token("alice"));
  result = testing::RunProcess({"tools/tetherctl/tetherctl", "--config", config, "login", "--cloud",
                                cloud_->address(), "--insecure", "--token-file", token_file});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->err;
  result = testing::RunProcess({"tools/tetherctl/tetherctl", "--config", config, "--json", "whoami"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->err;
  EXPECT_EQ(ParseJson<proto::WhoAmIResponse>(result->out).user().name(), "alice");
}

TEST(TetherctlTlsTest, LoginVerifiesTheCloudWithTheGivenCa) {
  const std::string dir = NewTempDir("tls");
  auto certs = crypto::MakeDevCertificates({"localhost"}, {"127.0.0.1"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  ASSERT_TRUE(crypto::WriteDevCertificates(*certs, dir).ok());
  auto other = crypto::MakeDevCertificates({"localhost"}, {"127.0.0.1"});
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(WriteFile(dir + "/other-ca.pem", other->ca_cert_pem, 0644).ok());

  CloudOptions options;
  options.insecure = false;
  options.flags = {absl::StrCat("--tls_cert=", dir, "/server.pem"), absl::StrCat("--tls_key=", dir, "/server.key")};
  auto cloud = CloudProcess::Start(options);
  ASSERT_TRUE(cloud.ok()) << cloud.status();
  const std::string token_file = SecretFile((*cloud)->token("alice"));
  Cli cli(absl::StrCat(NewTempDir("tls-cli"), "/tetherctl.conf"));
  // By address: the certificate carries an IP SAN, and no name has to be resolved.
  const std::string address = (*cloud)->address();

  CliResult wrong_ca = cli.Run({"login", "--cloud", address, "--ca", dir + "/other-ca.pem", "--token-file", token_file});
  EXPECT_EQ(wrong_ca.exit_code, 4) << Describe(wrong_ca);
  CliResult plaintext = cli.Run({"login", "--cloud", address, "--insecure", "--token-file", token_file});
  EXPECT_NE(plaintext.exit_code, 0) << Describe(plaintext);

  CliResult login = cli.Run({"login", "--cloud", address, "--ca", dir + "/ca.pem", "--token-file", token_file});
  ASSERT_EQ(login.exit_code, 0) << Describe(login);
  CliResult who = cli.Run({"whoami"});
  EXPECT_EQ(who.exit_code, 0) << Describe(who);
  EXPECT_TRUE(absl::StartsWith(who.out, "alice (")) << who.out;
}

}  // namespace
}  // namespace tether::tetherctl
