// The HTTP server over real loopback sockets, with small synchronous Beast clients.
#include "cloud/http/http_server.h"

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/crypto/dev_certs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tether::cloud::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using ::testing::HasSubstr;

using ClientResponse = bhttp::response<bhttp::string_body>;

// Like every Tether main (see http_server.h).
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// Bounds every client operation, so that a server bug fails a test instead of hanging it.
constexpr auto kClientDeadline = std::chrono::seconds(30);

std::string Get(absl::string_view target, absl::string_view extra_headers = "") {
  return absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: localhost\r\n", extra_headers, "\r\n");
}

std::string Post(absl::string_view target, absl::string_view body) {
  return absl::StrCat("POST ", target, " HTTP/1.1\r\nHost: localhost\r\nContent-Length: ",
                      body.size(), "\r\n\r\n", body);
}

// The server closed the connection (as opposed to the client giving up waiting).
bool IsClosed(const beast::error_code& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset ||
         ec == ssl::error::stream_truncated;
}

// Runs one asynchronous operation on `ioc` to completion. The clients below use Beast's async
// calls this way because tcp_stream's deadline (kClientDeadline) only bounds asynchronous
// operations; a synchronous read would wait forever on a server that never answers.
template <class Start>
beast::error_code Await(net::io_context& ioc, Start start) {
  beast::error_code result;
  ioc.restart();
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  ioc.run();
  return result;
}

// A plaintext HTTP/1.1 client that writes raw bytes and reads parsed responses.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(ioc_) {
    stream_.expires_after(kClientDeadline);
    connect_error_ = Await(ioc_, [&](auto done) {
      stream_.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), done);
    });
  }

  beast::error_code connect_error() const { return connect_error_; }

  beast::error_code Write(absl::string_view bytes) {
    stream_.expires_after(kClientDeadline);
    return Await(ioc_, [&](auto done) {
      net::async_write(stream_, net::buffer(bytes.data(), bytes.size()), done);
    });
  }

  // Reads one response (`head`: the response to a HEAD request, which has no body).
  beast::error_code Read(ClientResponse* response, bool head = false) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.skip(head);
    stream_.expires_after(kClientDeadline);
    beast::error_code ec =
        Await(ioc_, [&](auto done) { bhttp::async_read(stream_, buffer_, parser, done); });
    if (!ec) *response = parser.release();
    return ec;
  }

  // Writes `request` and reads the response; a failure fails the test.
  ClientResponse RoundTrip(absl::string_view request, bool head = false) {
    ClientResponse response;
    beast::error_code ec = Write(request);
    EXPECT_FALSE(ec) << ec.message();
    if (!ec) {
      ec = Read(&response, head);
      EXPECT_FALSE(ec) << ec.message();
    }
    return response;
  }

  // Reads until the connection ends and returns what ended it: eof or a reset when the server
  // closed it, beast::error::timeout when it did not within kClientDeadline. Bytes arriving
  // meanwhile are an error (bad_message).
  beast::error_code ReadUntilClosed() {
    if (buffer_.size() > 0) return beast::errc::make_error_code(beast::errc::bad_message);
    char scratch[1024];
    std::size_t n = 0;
    stream_.expires_after(kClientDeadline);
    beast::error_code ec = Await(ioc_, [&](auto done) {
      stream_.async_read_some(net::buffer(scratch), [&n, done](beast::error_code e,
                                                               std::size_t got) mutable {
        n = got;
        done(e);
      });
    });
    if (!ec && n > 0) return beast::errc::make_error_code(beast::errc::bad_message);
    return ec;
  }

  void ShutdownSend() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

 private:
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  beast::error_code connect_error_;
};

template <class Name>
std::string HeaderOf(const ClientResponse& response, Name name) {
  auto value = response[name];
  return std::string(value.data(), value.size());
}

int CountHeader(const ClientResponse& response, absl::string_view name) {
  int count = 0;
  for (const auto& field : response) {
    auto field_name = field.name_string();
    if (absl::EqualsIgnoreCase(absl::string_view(field_name.data(), field_name.size()), name)) {
      ++count;
    }
  }
  return count;
}

// Records the requests a handler saw. Thread-safe.
class RequestLog {
 public:
  void Add(const Request& request) {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
  }
  std::vector<Request> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Request> requests_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  // A plaintext server on loopback whose handler logs the request and echoes its body.
  std::unique_ptr<Server> StartPlain(ServerOptions options = {}, Handler handler = nullptr) {
    options.insecure = true;
    if (!handler) {
      handler = [this](const Request& request) {
        log_.Add(request);
        Response response;
        response.body = absl::StrCat("echo:", request.body);
        return response;
      };
    }
    auto server = Server::Start(std::move(options), std::move(handler));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  // A fresh directory under TEST_TMPDIR for this test.
  static std::string TestDir() {
    std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(dir.c_str(), 0700);
    return dir;
  }

  RequestLog log_;
};

TEST_F(HttpServerTest, GetReachesTheHandlerWithPathQueryAndHeadersDecoded) {
  auto server = StartPlain({}, [this](const Request& request) {
    log_.Add(request);
    Response response;
    response.body = "hello";
    response.headers.emplace_back("X-Handler", "yes");
    return response;
  });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_FALSE(client.connect_error());
  ClientResponse response = client.RoundTrip(
      Get("/v1/items/a%2Fb?name=a%20b&sum=1%2B1&plus=x+y&empty=&flag&name=second",
          "X-Trace: abc\r\nAccept: text/plain\r\n"));
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), "hello");
  EXPECT_EQ(HeaderOf(response, bhttp::field::content_type), "text/plain; charset=utf-8");
  EXPECT_EQ(HeaderOf(response, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(HeaderOf(response, bhttp::field::cache_control), "no-store");
  EXPECT_EQ(HeaderOf(response, bhttp::field::server), "tether");
  EXPECT_EQ(response["X-Handler"], "yes");

  std::vector<Request> requests = log_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const Request& request = requests[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target,
            "/v1/items/a%2Fb?name=a%20b&sum=1%2B1&plus=x+y&empty=&flag&name=second");
  EXPECT_EQ(request.path, "/v1/items/a%2Fb");  // the path is not decoded
  std::map<std::string, std::string> expected_query = {
      {"name", "a b"}, {"sum", "1+1"}, {"plus", "x y"}, {"empty", ""}, {"flag", ""}};
  EXPECT_EQ(request.query, expected_query);
  EXPECT_EQ(request.Header("x-trace"), "abc");
  EXPECT_EQ(request.Header("ACCEPT"), "text/plain");
  EXPECT_EQ(request.Header("Host"), "localhost");
  EXPECT_EQ(request.Header("X-Absent"), "");
  EXPECT_EQ(request.body, "");
}

TEST_F(HttpServerTest, PostBodyIsDelivered) {
  auto server = StartPlain();
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  std::string body = "{\"name\":\"machine-1\"}";
  ClientResponse response = client.RoundTrip(Post("/v1/machines", body));
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), absl::StrCat("echo:", body));
  std::vector<Request> requests = log_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/v1/machines");
  EXPECT_EQ(requests[0].body, body);
}

TEST_F(HttpServerTest, ExpectContinueGetsA100BeforeTheBodyIsSent) {
  auto server = StartPlain();
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_FALSE(client.Write(
      "POST /upload HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
      "Content-Length: 5\r\n\r\n"));
  ClientResponse interim;
  ASSERT_FALSE(client.Read(&interim));
  EXPECT_EQ(interim.result_int(), 100);
  ClientResponse response = client.RoundTrip("hello");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), "echo:hello");
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  auto server = StartPlain();
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ClientResponse first = client.RoundTrip(Post("/one", "1"));
  EXPECT_EQ(first.result_int(), 200);
  EXPECT_TRUE(first.keep_alive());
  ClientResponse second = client.RoundTrip(Post("/two", "2"));
  EXPECT_EQ(second.result_int(), 200);
  EXPECT_EQ(second.body(), "echo:2");
  EXPECT_EQ(log_.requests().size(), 2u);

  // Connection: close is honoured: the answer says so and the server closes.
  ClientResponse last = client.RoundTrip(Get("/three", "Connection: close\r\n"));
  EXPECT_EQ(last.result_int(), 200);
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(IsClosed(client.ReadUntilClosed()));
}

TEST_F(HttpServerTest, HeadGetsTheLengthButNoBody) {
  auto server = StartPlain();
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ClientResponse head = client.RoundTrip(
      "HEAD /page HTTP/1.1\r\nHost: localhost\r\n\r\n", /*head=*/true);
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(HeaderOf(head, bhttp::field::content_length), "5");  // "echo:"
  // Had the server sent a body, this response would not parse.
  ClientResponse next = client.RoundTrip(Post("/next", "n"));
  EXPECT_EQ(next.result_int(), 200);
  EXPECT_EQ(next.body(), "echo:n");
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413AndNeverReachesTheHandler) {
  struct Case {
    const char* name;
    std::string request;
  };
  std::string big(1000, 'x');
  const Case cases[] = {
      {"content-length", Post("/upload", big)},
      {"chunked", absl::StrCat("POST /upload HTTP/1.1\r\nHost: localhost\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n3e8\r\n",
                               big, "\r\n0\r\n\r\n")},
  };
  ServerOptions options;
  options.body_limit = 64;
  auto server = StartPlain(options);
  ASSERT_NE(server, nullptr);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Client client(server->port());
    ClientResponse response = client.RoundTrip(c.request);
    EXPECT_EQ(response.result_int(), 413);
    EXPECT_EQ(HeaderOf(response, "X-Content-Type-Options"), "nosniff");
    EXPECT_TRUE(IsClosed(client.ReadUntilClosed()));
  }
  EXPECT_TRUE(log_.requests().empty());
  // A body within the limit still gets through.
  Client client(server->port());
  EXPECT_EQ(client.RoundTrip(Post("/upload", std::string(64, 'y'))).result_int(), 200);
}

// body_limit_for decides from the header alone, before the body is read; the server-wide limit
// still caps it.
TEST_F(HttpServerTest, APerRequestBodyLimitIsDecidedFromTheHeader) {
  ServerOptions options;
  options.body_limit = 512;
  options.body_limit_for = [](const Request& head) -> size_t {
    EXPECT_TRUE(head.body.empty());
    return head.Header("Authorization") == "Bearer ok" ? 100000 : 16;
  };
  auto server = StartPlain(options);
  ASSERT_NE(server, nullptr);
  auto post = [](const std::string& body, const std::string& auth) {
    return absl::StrCat("POST /upload HTTP/1.1\r\nHost: localhost\r\nAuthorization: ", auth,
                        "\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
  };
  std::string chunked_17 = absl::StrCat("POST /upload HTTP/1.1\r\nHost: localhost\r\n"
                                        "Authorization: Bearer no\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        "11\r\n", std::string(17, 'c'), "\r\n0\r\n\r\n");
  for (const std::string& refused : {post(std::string(17, 'x'), "Bearer no"), chunked_17,
                                     post(std::string(513, 'x'), "Bearer ok")}) {
    Client client(server->port());
    EXPECT_EQ(client.RoundTrip(refused).result_int(), 413);
  }
  EXPECT_TRUE(log_.requests().empty());
  Client small(server->port());
  EXPECT_EQ(small.RoundTrip(post(std::string(16, 'y'), "Bearer no")).result_int(), 200);
  Client large(server->port());
  EXPECT_EQ(large.RoundTrip(post(std::string(512, 'z'), "Bearer ok")).result_int(), 200);
  EXPECT_EQ(log_.requests().size(), 2u);
}

TEST_F(HttpServerTest, MalformedRequestsAre400AndClosed) {
  const std::string cases[] = {
      "hello world\r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTP/1.1\r\nthis is not a header\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "GET no-leading-slash HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /?a=%4 HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  auto server = StartPlain();
  ASSERT_NE(server, nullptr);
  for (const std::string& request : cases) {
    SCOPED_TRACE(request);
    Client client(server->port());
    ClientResponse response = client.RoundTrip(request);
    EXPECT_EQ(response.result_int(), 400);
    EXPECT_FALSE(response.keep_alive());
    EXPECT_TRUE(IsClosed(client.ReadUntilClosed()));
  }
  EXPECT_TRUE(log_.requests().empty());
}

TEST_F(HttpServerTest, OversizedHeaderIs431) {
  auto server = StartPlain();
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ClientResponse response =
      client.RoundTrip(Get("/", absl::StrCat("X-Big: ", std::string(20000, 'h'), "\r\n")));
  EXPECT_EQ(response.result_int(), 431);
  EXPECT_TRUE(log_.requests().empty());
}

TEST_F(HttpServerTest, SlowClientIsDisconnectedAfterTheReadTimeout) {
  ServerOptions options;
  options.read_timeout = absl::Milliseconds(100);
  auto server = StartPlain(options);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_FALSE(client.Write("GET / HTTP/1.1\r\nHost: loc"));  // and nothing more
  // The client waits up to kClientDeadline; the server must give up long before.
  beast::error_code ec = client.ReadUntilClosed();
  EXPECT_TRUE(IsClosed(ec)) << ec.message();
  EXPECT_TRUE(log_.requests().empty());
}

TEST_F(HttpServerTest, HandlerExceptionIs500AndTheServerKeepsServing) {
  auto server = StartPlain({}, [](const Request& request) -> Response {
    if (request.path == "/throw-std") throw std::runtime_error("boom");
    if (request.path == "/throw-int") throw 42;
    return Response{.body = "fine"};
  });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  for (const char* path : {"/throw-std", "/throw-int"}) {
    SCOPED_TRACE(path);
    ClientResponse response = client.RoundTrip(Get(path));
    EXPECT_EQ(response.result_int(), 500);
    EXPECT_EQ(HeaderOf(response, bhttp::field::cache_control), "no-store");
  }
  // The same connection, and a new one, still work.
  EXPECT_EQ(client.RoundTrip(Get("/ok")).body(), "fine");
  Client other(server->port());
  EXPECT_EQ(other.RoundTrip(Get("/ok")).result_int(), 200);
}

TEST_F(HttpServerTest, HandlerResponsesThatWouldBeMalformedBecome500) {
  struct Case {
    const char* name;
    Response response;
  };
  const Case cases[] = {
      {"status below 200", Response{.status = 101}},
      {"status above 599", Response{.status = 1000}},
      {"header injection", Response{.headers = {{"X-A", "v\r\nSet-Cookie: evil=1"}}}},
      {"bad header name", Response{.headers = {{"Bad Name", "v"}}}},
      {"content type injection", Response{.content_type = "text/html\r\nX-Evil: 1"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto server = StartPlain({}, [&c](const Request&) { return c.response; });
    ASSERT_NE(server, nullptr);
    Client client(server->port());
    ClientResponse response = client.RoundTrip(Get("/"));
    EXPECT_EQ(response.result_int(), 500);
    EXPECT_EQ(CountHeader(response, "Set-Cookie"), 0);
    EXPECT_EQ(CountHeader(response, "X-Evil"), 0);
  }
}

TEST_F(HttpServerTest, HandlerHeadersReplaceDefaultsOfTheSameNameAndFramingStaysTheServers) {
  auto server = StartPlain({}, [](const Request&) {
    Response response;
    response.content_type = "application/json";
    response.body = "{}";
    response.headers = {{"cache-control", "max-age=60"},
                        {"Content-Length", "999"},
                        {"Connection", "close"},
                        {"Set-Cookie", "a=1"},
                        {"Set-Cookie", "b=2"}};
    return response;
  });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ClientResponse response = client.RoundTrip(Get("/"));
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), "{}");
  EXPECT_EQ(HeaderOf(response, bhttp::field::content_type), "application/json");
  EXPECT_EQ(CountHeader(response, "Cache-Control"), 1);
  EXPECT_EQ(HeaderOf(response, bhttp::field::cache_control), "max-age=60");
  EXPECT_EQ(HeaderOf(response, bhttp::field::content_length), "2");
  EXPECT_EQ(CountHeader(response, "Set-Cookie"), 2);
  EXPECT_EQ(HeaderOf(response, "X-Content-Type-Options"), "nosniff");
  EXPECT_TRUE(response.keep_alive());
  EXPECT_EQ(client.RoundTrip(Get("/")).result_int(), 200);
}

TEST_F(HttpServerTest, ConnectionsOverTheLimitAreClosed) {
  ServerOptions options;
  options.max_connections = 1;
  auto server = StartPlain(options);
  ASSERT_NE(server, nullptr);
  auto holder = std::make_unique<Client>(server->port());
  EXPECT_EQ(holder->RoundTrip(Get("/")).result_int(), 200);  // accepted and counted

  Client refused(server->port());
  EXPECT_TRUE(IsClosed(refused.ReadUntilClosed()));
  EXPECT_EQ(holder->RoundTrip(Get("/")).result_int(), 200);  // the first one is unharmed

  // Once the first connection is gone its slot is free again. The server notices the close
  // asynchronously, so retry (each attempt is a full round trip) until a deadline.
  holder->ShutdownSend();
  EXPECT_TRUE(IsClosed(holder->ReadUntilClosed()));
  holder.reset();
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool served = false;
  while (!served && absl::Now() < deadline) {
    Client next(server->port());
    ClientResponse response;
    served = !next.Write(Get("/")) && !next.Read(&response) && response.result_int() == 200;
  }
  EXPECT_TRUE(served);
}

TEST_F(HttpServerTest, StopReturnsPromptlyWhileAClientHoldsAnIdleKeepAliveConnection) {
  ServerOptions options;
  options.read_timeout = absl::Hours(1);  // the idle connection would outlive the test
  auto server = StartPlain(options);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  EXPECT_EQ(client.RoundTrip(Get("/")).result_int(), 200);
  std::future<void> stopped = std::async(std::launch::async, [&server] { server->Stop(); });
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(IsClosed(client.ReadUntilClosed()));
  server->Stop();  // idempotent
  Client late(server->port());
  EXPECT_TRUE(late.connect_error());  // no longer listening
}

TEST_F(HttpServerTest, TlsServesAClientThatVerifiesTheDevCa) {
  std::string dir = TestDir();
  auto certs = crypto::MakeDevCertificates({"localhost"}, {"127.0.0.1"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  ASSERT_TRUE(crypto::WriteDevCertificates(*certs, dir).ok());
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.tls_cert_file = dir + "/server.pem";
  options.tls_key_file = dir + "/server.key";
  options.threads = 2;
  auto server = Server::Start(options, [](const Request& request) {
    return Response{.body = absl::StrCat("tls:", request.path)};
  });
  ASSERT_TRUE(server.ok()) << server.status();

  // Returns the handshake error, or the response of GET /healthz.
  auto fetch = [&](const std::string& ca_pem, const std::string& host, ClientResponse* out) {
    ssl::context ctx(ssl::context::tls_client);
    ctx.add_certificate_authority(net::buffer(ca_pem));
    ctx.set_verify_mode(ssl::verify_peer);
    net::io_context ioc;
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
    stream.set_verify_callback(ssl::host_name_verification(host));
    beast::get_lowest_layer(stream).expires_after(kClientDeadline);
    beast::error_code ec = Await(ioc, [&](auto done) {
      beast::get_lowest_layer(stream).async_connect(
          tcp::endpoint(net::ip::make_address("127.0.0.1"), (*server)->port()), done);
    });
    if (ec) return ec;
    ec = Await(ioc, [&](auto done) { stream.async_handshake(ssl::stream_base::client, done); });
    if (ec) return ec;
    EXPECT_GE(SSL_version(stream.native_handle()), TLS1_2_VERSION);
    bhttp::request<bhttp::empty_body> request(bhttp::verb::get, "/healthz", 11);
    request.set(bhttp::field::host, host);
    ec = Await(ioc, [&](auto done) { bhttp::async_write(stream, request, done); });
    if (ec) return ec;
    beast::flat_buffer buffer;
    return Await(ioc, [&](auto done) { bhttp::async_read(stream, buffer, *out, done); });
  };

  ClientResponse response;
  beast::error_code ec = fetch(certs->ca_cert_pem, "localhost", &response);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), "tls:/healthz");
  EXPECT_EQ(HeaderOf(response, "X-Content-Type-Options"), "nosniff");

  // The client really verifies: another CA, or a name the certificate does not carry, fails.
  auto other = crypto::MakeDevCertificates({"localhost"}, {});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(fetch(other->ca_cert_pem, "localhost", &response));
  EXPECT_TRUE(fetch(certs->ca_cert_pem, "cloud.example.com", &response));

  // Plaintext to the TLS port gets no HTTP answer.
  Client plain((*server)->port());
  ClientResponse ignored;
  EXPECT_TRUE(plain.Write(Get("/healthz")) || plain.Read(&ignored));
}

TEST_F(HttpServerTest, StartRefusesUnsafeOrIncompleteOptions) {
  struct Case {
    const char* name;
    ServerOptions options;
    const char* message;
  };
  const Case cases[] = {
      {"insecure on all interfaces", {.listen = "0.0.0.0:0", .insecure = true},
       "only allowed on loopback"},
      {"insecure on a LAN address", {.listen = "192.168.1.10:0", .insecure = true},
       "only allowed on loopback"},
      {"insecure on IPv6 any", {.listen = "[::]:0", .insecure = true},
       "only allowed on loopback"},
      {"neither TLS nor insecure", {.listen = "127.0.0.1:0"}, "tls_cert_file"},
      {"only a certificate", {.listen = "127.0.0.1:0", .tls_cert_file = "/nonexistent"},
       "tls_key_file"},
      {"insecure with TLS files",
       {.listen = "127.0.0.1:0", .tls_cert_file = "c", .tls_key_file = "k", .insecure = true},
       "mutually exclusive"},
      {"no port", {.listen = "127.0.0.1", .insecure = true}, "host:port"},
      {"port out of range", {.listen = "127.0.0.1:70000", .insecure = true}, "port"},
      {"host name", {.listen = "example.com:0", .insecure = true}, "IP address"},
      {"no threads", {.listen = "127.0.0.1:0", .insecure = true, .threads = 0}, "threads"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto server = Server::Start(c.options, [](const Request&) { return Response{}; });
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
    EXPECT_THAT(server.status().message(), HasSubstr(c.message));
  }
  auto no_handler = Server::Start({.insecure = true}, nullptr);
  EXPECT_EQ(no_handler.status().code(), absl::StatusCode::kInvalidArgument);
  // Loopback spelled as a name is fine.
  auto localhost = Server::Start({.listen = "localhost:0", .insecure = true},
                                 [](const Request&) { return Response{}; });
  EXPECT_TRUE(localhost.ok()) << localhost.status();
}

TEST_F(HttpServerTest, TlsKeyFileReadableByOthersIsRefused) {
  std::string dir = TestDir();
  auto certs = crypto::MakeDevCertificates({"localhost"}, {"127.0.0.1"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  ASSERT_TRUE(crypto::WriteDevCertificates(*certs, dir).ok());
  std::string key = dir + "/server.key";
  ASSERT_EQ(chmod(key.c_str(), 0644), 0);
  ServerOptions options;
  options.tls_cert_file = dir + "/server.pem";
  options.tls_key_file = key;
  auto server = Server::Start(options, [](const Request&) { return Response{}; });
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kPermissionDenied) << server.status();
  EXPECT_THAT(server.status().message(), HasSubstr(key));
  // The same file at 0600 is accepted, so it was the mode that was refused.
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  auto fixed = Server::Start(options, [](const Request&) { return Response{}; });
  EXPECT_TRUE(fixed.ok()) << fixed.status();
}

}  // namespace
}  // namespace tether::cloud::http
