#include "tools/tetherctl/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tools/tetherctl/tetherctl.h"

extern char** environ;

namespace tether::tetherctl::testing {
namespace {

constexpr char kCloudBinary[] = "cloud/cloud_server";

std::string TempRoot() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string ReadAll(int fd) {
  std::string data;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) data.append(buffer, static_cast<size_t>(n));
  }
  return data;
}

// posix_spawn rather than fork: the test process runs gRPC threads, and a forked child of a
// multithreaded process may only call async-signal-safe functions anyway.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", strerror(error)));
  return pid;
}

}  // namespace

std::string NewTempDir(absl::string_view prefix) {
  static std::atomic<int> counter{0};
  std::string dir = absl::StrCat(TempRoot(), "/", prefix, "-", getpid(), "-", ++counter);
  mkdir(dir.c_str(), 0700);
  return dir;
}

absl::Status WriteFile(const std::string& path, absl::string_view content, mode_t mode) {
  {
    std::ofstream out(path, std::ios::trunc | std::ios::binary);
    out << content;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (chmod(path.c_str(), mode) != 0) return absl::InternalError(absl::StrCat("cannot chmod ", path));
  return absl::OkStatus();
}

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe failed");
  }
  absl::StatusOr<pid_t> pid = Spawn(argv, out_pipe[1], err_pipe[1]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  if (pid.ok()) {
    std::thread err_reader([&] { result.err = ReadAll(err_pipe[0]); });
    result.out = ReadAll(out_pipe[0]);
    err_reader.join();
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  if (!pid.ok()) return pid.status();
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

absl::StatusOr<std::unique_ptr<CloudProcess>> CloudProcess::Start(CloudOptions options) {
  std::unique_ptr<CloudProcess> cloud(new CloudProcess());
  const std::string dir = NewTempDir("cloud");
  const std::string data_dir = absl::StrCat(dir, "/data");
  for (const auto& [name, admin] : options.users) {
    std::vector<std::string> argv = {kCloudBinary, "admin", "create-user", name,
                                     absl::StrCat("--data_dir=", data_dir)};
    if (admin) argv.push_back("--admin");
    absl::StatusOr<ProcessResult> made = RunProcess(argv);
    if (!made.ok()) return made.status();
    if (made->exit_code != 0) {
      return absl::InternalError(absl::StrCat("create-user ", name, " failed: ", made->err));
    }
    cloud->tokens_[name] = std::string(absl::StripAsciiWhitespace(made->out));
  }
  if (options.relay_keys_file.empty()) {
    options.relay_keys_file = absl::StrCat(dir, "/relay-keys");
    absl::Status written = WriteFile(options.relay_keys_file,
                                     "listen-key listen-key-0123456789abcdef0123456789 Listen\n"
                                     "send-key send-key-0123456789abcdef0123456789 Send\n"
                                     "manage-key manage-key-0123456789abcdef0123456789 Manage\n",
                                     0600);
    if (!written.ok()) return written;
  }
  const std::string port_file = absl::StrCat(dir, "/port");
  std::vector<std::string> argv = {kCloudBinary,
                                   "--listen=127.0.0.1:0",
                                   "--http_listen=127.0.0.1:0",
                                   absl::StrCat("--port_file=", port_file),
                                   absl::StrCat("--data_dir=", data_dir),
                                   absl::StrCat("--relay_url=", options.relay_url),
                                   absl::StrCat("--relay_keys_file=", options.relay_keys_file)};
  if (options.insecure) argv.push_back("--insecure");
  argv.insert(argv.end(), options.flags.begin(), options.flags.end());
  absl::StatusOr<pid_t> pid = Spawn(argv, -1, -1);
  if (!pid.ok()) return pid.status();
  cloud->pid_ = *pid;
  // Wait for the port file (written atomically once the server listens), with a deadline.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(cloud->pid_, &status, WNOHANG) == cloud->pid_) {
      cloud->pid_ = -1;
      return absl::InternalError(absl::StrCat("cloud_server exited early with status ", status));
    }
    std::ifstream in(port_file);
    std::string text;
    int port = 0;
    if (in && std::getline(in, text) && absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) &&
        port > 0) {
      cloud->port_ = static_cast<uint16_t>(port);
      return cloud;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a file, not a race
  }
  return absl::DeadlineExceededError("cloud_server did not write its port file in 30 s");
}

CloudProcess::~CloudProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int status = 0;
  while (absl::Now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // reaping with a deadline
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
}

std::string CloudProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::shared_ptr<grpc::Channel> CloudChannel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

std::unique_ptr<grpc::ClientContext> UserContext(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

absl::StatusOr<std::shared_ptr<TestMachine>> RegisterMachine(const std::string& address,
                                                             const std::string& token,
                                                             const std::string& name) {
  auto machine = std::make_shared<TestMachine>();
  absl::StatusOr<crypto::X25519KeyPair> x25519 = crypto::GenerateX25519KeyPair();
  if (!x25519.ok()) return x25519.status();
  absl::StatusOr<crypto::Ed25519KeyPair> ed25519 = crypto::GenerateEd25519KeyPair();
  if (!ed25519.ok()) return ed25519.status();
  machine->x25519 = *std::move(x25519);
  machine->ed25519 = *std::move(ed25519);
  proto::RegisterMachineRequest request;
  request.set_name(name);
  request.set_x25519_pub(machine->x25519.public_key);
  request.set_ed25519_pub(machine->ed25519.public_key);
  auto stub = proto::MachineService::NewStub(CloudChannel(address));
  grpc::Status status = stub->RegisterMachine(UserContext(token).get(), request, &machine->registration);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return machine;
}

CliResult Cli::Run(std::vector<std::string> args, SecretPrompt prompt) const {
  args.insert(args.begin(), {"--config", config_file_});
  std::istringstream in;
  std::ostringstream out, err;
  TetherctlIo io;
  io.in = &in;
  io.out = &out;
  io.err = &err;
  io.prompt = std::move(prompt);
  CliResult result;
  result.exit_code = RunTetherctl(args, io);
  result.out = out.str();
  result.err = err.str();
  return result;
}

CliResult Cli::Login(const std::string& address, const std::string& token) const {
  const std::string token_file = absl::StrCat(NewTempDir("token"), "/token");
  EXPECT_TRUE(WriteFile(token_file, absl::StrCat(token, "\n"), 0600).ok());
  return Run({"login", "--cloud", address, "--insecure", "--token-file", token_file});
}

SecretPrompt ScriptedPrompt(std::vector<std::string> answers,
                            std::shared_ptr<std::vector<std::string>> prompts) {
  auto remaining = std::make_shared<std::vector<std::string>>(std::move(answers));
  return [remaining, prompts](absl::string_view prompt) -> absl::StatusOr<crypto::SecretBytes> {
    if (prompts != nullptr) prompts->push_back(std::string(prompt));
    if (remaining->empty()) {
      ADD_FAILURE() << "unexpected prompt: " << prompt;
      return absl::InvalidArgumentError("no more scripted answers");
    }
    crypto::SecretBytes answer(remaining->front());
    remaining->erase(remaining->begin());
    return answer;
  };
}

}  // namespace tether::tetherctl::testing
