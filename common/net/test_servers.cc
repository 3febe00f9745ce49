#include "common/net/test_servers.h"

#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tether::net::testing {
namespace {

bool WriteAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool WriteAll(int fd, const std::string& text) { return WriteAll(fd, text.data(), text.size()); }

// Reads up to the end of the HTTP header, one byte at a time (so nothing after it is consumed).
std::optional<std::string> ReadHeader(int fd) {
  std::string header;
  char c;
  while (header.size() < 16384) {
    if (recv(fd, &c, 1, 0) != 1) return std::nullopt;
    header.push_back(c);
    if (absl::EndsWith(header, "\r\n\r\n")) return header;
  }
  return std::nullopt;
}

int ConnectTo(const std::string& authority) {
  std::string host = authority, port = "80";
  if (std::size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* results = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &results) != 0) return -1;
  int fd = -1;
  for (addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(results);
  return fd;
}

}  // namespace

// --- TestTcpServer ---

TestTcpServer::~TestTcpServer() { Stop(); }

absl::Status TestTcpServer::Listen() {
  // The TLS echo server writes with SSL on a raw fd (a TLS 1.3 session ticket can go out inside
  // SSL_read): a client that already hung up must cost an EPIPE, not the whole test process.
  signal(SIGPIPE, SIG_IGN);
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd_ < 0) return absl::InternalError("socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listen_fd_, 64) != 0) {
    return absl::InternalError(absl::StrCat("bind/listen failed: ", std::strerror(errno)));
  }
  socklen_t length = sizeof(address);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  if (pipe(stop_pipe_) != 0) return absl::InternalError("pipe failed");
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void TestTcpServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    connections_.fetch_add(1);
    absl::MutexLock lock(&mu_);
    if (stopped_) {
      close(fd);
      return;
    }
    open_fds_.push_back(fd);
    threads_.emplace_back([this, fd] {
      HandleConnection(fd);
      absl::MutexLock lock(&mu_);
      open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
      close(fd);
    });
  }
}

void TestTcpServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || listen_fd_ < 0) return;
    stopped_ = true;
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  char byte = 0;
  if (write(stop_pipe_[1], &byte, 1) != 1) {
    // The accept loop also ends when the listening socket closes below.
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
}

// --- EchoServer ---

absl::StatusOr<std::unique_ptr<EchoServer>> EchoServer::Start(const std::string& cert_file,
                                                              const std::string& key_file) {
  std::unique_ptr<EchoServer> server(new EchoServer());
  if (!cert_file.empty()) {
    server->tls_ = SSL_CTX_new(TLS_server_method());
    if (server->tls_ == nullptr ||
        SSL_CTX_use_certificate_chain_file(server->tls_, cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(server->tls_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::InternalError("cannot load the test server certificate");
    }
  }
  if (absl::Status status = server->Listen(); !status.ok()) return status;
  return server;
}

EchoServer::~EchoServer() {
  Stop();
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

std::vector<std::string> EchoServer::sni_names() {
  absl::MutexLock lock(&mu_);
  return sni_names_;
}

void EchoServer::HandleConnection(int fd) {
  char buffer[4096];
  if (tls_ == nullptr) {
    while (true) {
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0 || !WriteAll(fd, buffer, static_cast<std::size_t>(n))) return;
    }
  }
  SSL* ssl = SSL_new(tls_);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) != 1) {
    failed_handshakes_.fetch_add(1);
    SSL_free(ssl);
    return;
  }
  {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    absl::MutexLock lock(&mu_);
    sni_names_.push_back(name ? name : "");
  }
  while (true) {
    int n = SSL_read(ssl, buffer, sizeof(buffer));
    if (n <= 0 || SSL_write(ssl, buffer, n) != n) break;
  }
  SSL_free(ssl);
}

// --- ConnectProxy ---

absl::StatusOr<std::unique_ptr<ConnectProxy>> ConnectProxy::Start(
    std::optional<std::string> expected_auth, Mode mode) {
  std::unique_ptr<ConnectProxy> proxy(new ConnectProxy());
  proxy->expected_auth_ = std::move(expected_auth);
  proxy->mode_ = mode;
  if (absl::Status status = proxy->Listen(); !status.ok()) return status;
  return proxy;
}

ConnectProxy::~ConnectProxy() { Stop(); }

std::string ConnectProxy::url() const { return absl::StrCat("http://127.0.0.1:", port()); }

std::vector<std::string> ConnectProxy::connect_targets() {
  absl::MutexLock lock(&mu_);
  return targets_;
}

std::vector<std::string> ConnectProxy::authorizations() {
  absl::MutexLock lock(&mu_);
  return authorizations_;
}

void ConnectProxy::HandleConnection(int fd) {
  std::optional<std::string> header = ReadHeader(fd);
  if (!header) return;
  std::vector<std::string> lines = absl::StrSplit(*header, "\r\n");
  std::vector<std::string> request_line = absl::StrSplit(lines[0], ' ');
  if (request_line.size() != 3 || request_line[0] != "CONNECT") {
    WriteAll(fd, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  std::string authorization;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    if (absl::StartsWithIgnoreCase(line, "proxy-authorization:")) {
      authorization = std::string(absl::StripAsciiWhitespace(line.substr(20)));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    targets_.push_back(request_line[1]);
    authorizations_.push_back(authorization);
  }
  if (mode_ == Mode::kSilent) {
    char c;
    while (recv(fd, &c, 1, 0) > 0) {
    }
    return;
  }
  if (mode_ == Mode::kRefuse) {
    WriteAll(fd, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  if (expected_auth_ && authorization != *expected_auth_) {
    WriteAll(fd,
             "HTTP/1.1 407 Proxy Authentication Required\r\n"
             "Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  int upstream = ConnectTo(request_line[1]);
  if (upstream < 0) {
    WriteAll(fd, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  tunnels_.fetch_add(1);
  if (!WriteAll(fd, "HTTP/1.1 200 Connection established\r\n\r\n")) {
    close(upstream);
    return;
  }
  char buffer[16384];
  pollfd fds[2] = {{fd, POLLIN, 0}, {upstream, POLLIN, 0}};
  while (poll(fds, 2, -1) > 0) {
    bool done = false;
    for (int i = 0; i < 2 && !done; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t n = recv(fds[i].fd, buffer, sizeof(buffer), 0);
      done = n <= 0 || !WriteAll(fds[1 - i].fd, buffer, static_cast<std::size_t>(n));
    }
    if (done) break;
  }
  close(upstream);
}

}  // namespace tether::net::testing
