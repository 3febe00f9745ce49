// The relay over real TLS with dev certificates: verified handshakes, refused plaintext, and the
// key file mode check.
#include <sys/stat.h>

#include <cstdlib>
#include <future>
#include <memory>
#include <string>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "absl/strings/str_cat.h"
#include "common/crypto/dev_certs.h"
#include "common/crypto/sas_token.h"
#include "common/proto/relay.pb.h"
#include "gtest/gtest.h"
#include "relay/relay_server.h"

namespace tether::relay {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

constexpr char kKey[] = "tls-test-key-0123456789abcdef0123456789";

using TlsWebSocket = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

class RelayTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR"));
    auto certs = crypto::MakeDevCertificates({"localhost"}, {"127.0.0.1"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    ASSERT_TRUE(crypto::WriteDevCertificates(*certs, dir_).ok());
    ca_pem_ = certs->ca_cert_pem;
  }

  RelayOptions Options() {
    RelayOptions options;
    auto ring = crypto::SasKeyRing::Parse(absl::StrCat("all ", kKey, " Manage\n"));
    options.keys = std::make_shared<const crypto::SasKeyRing>(*std::move(ring));
    options.listen_port = 0;
    options.tls_cert_file = dir_ + "/server.pem";
    options.tls_key_file = dir_ + "/server.key";
    options.threads = 2;
    return options;
  }

  std::string Token() {
    return crypto::CreateSasToken("https://localhost/$hc/", "all", crypto::SecretBytes(kKey),
                                  time(nullptr) + 600);
  }

  // Opens a verified TLS WebSocket; returns the HTTP status (101 on success).
  int Open(TlsWebSocket& ws, uint16_t port, const std::string& target,
           const std::string& host) {
    beast::error_code ec;
    beast::get_lowest_layer(ws).expires_after(std::chrono::seconds(30));
    beast::get_lowest_layer(ws).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return 0;
    SSL_set_tlsext_host_name(ws.next_layer().native_handle(), host.c_str());
    ws.next_layer().set_verify_callback(ssl::host_name_verification(host));
    ws.next_layer().handshake(ssl::stream_base::client, ec);
    if (ec) return -1;
    std::string token = Token();
    ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
      req.set(beast::http::field::authorization, token);
    }));
    websocket::response_type res;
    ws.handshake(res, host, target, ec);
    if (ec) return static_cast<int>(res.result_int());
    ws.binary(true);
    return 101;
  }

  std::unique_ptr<ssl::context> ClientContext(const std::string& ca_pem) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->add_certificate_authority(net::buffer(ca_pem));
    ctx->set_verify_mode(ssl::verify_peer);
    return ctx;
  }

  std::string dir_;
  std::string ca_pem_;
};

TEST_F(RelayTlsTest, ChannelWorksOverVerifiedTls) {
  auto server = RelayServer::Create(Options());
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Start();
  uint16_t port = (*server)->port();
  auto ctx = ClientContext(ca_pem_);

  net::io_context ioc;
  TlsWebSocket listener(ioc, *ctx);
  ASSERT_EQ(Open(listener, port, "/$hc/m1?action=listen&id=l1", "localhost"), 101);
  net::io_context ioc2;
  TlsWebSocket sender(ioc2, *ctx);
  std::future<int> status = std::async(std::launch::async, [&] {
    return Open(sender, port, "/$hc/m1?action=connect", "127.0.0.1");
  });
  beast::flat_buffer buffer;
  listener.read(buffer);
  proto::RelayFrame open;
  ASSERT_TRUE(open.ParseFromString(beast::buffers_to_string(buffer.data())));
  ASSERT_TRUE(open.has_open());
  proto::RelayFrame accept;
  accept.mutable_accept()->set_channel_id(open.open().channel_id());
  listener.write(net::buffer(accept.SerializeAsString()));
  ASSERT_EQ(status.get(), 101);
  sender.write(net::buffer(std::string("over tls")));
  buffer.consume(buffer.size());
  listener.read(buffer);
  proto::RelayFrame data;
  ASSERT_TRUE(data.ParseFromString(beast::buffers_to_string(buffer.data())));
  EXPECT_EQ(data.data().payload(), "over tls");
  (*server)->Stop();
}

TEST_F(RelayTlsTest, ClientsThatDoNotTrustTheCaOrUseTheWrongNameFail) {
  auto server = RelayServer::Create(Options());
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Start();
  auto other = crypto::MakeDevCertificates({"localhost"}, {});
  ASSERT_TRUE(other.ok());
  auto wrong_ca = ClientContext(other->ca_cert_pem);
  net::io_context ioc;
  TlsWebSocket ws(ioc, *wrong_ca);
  EXPECT_EQ(Open(ws, (*server)->port(), "/$hc/m1?action=listen&id=l1", "localhost"), -1);
  auto right_ca = ClientContext(ca_pem_);
  TlsWebSocket ws2(ioc, *right_ca);
  EXPECT_EQ(Open(ws2, (*server)->port(), "/$hc/m1?action=listen&id=l1",
                 "relay.example.com"),
            -1);
  (*server)->Stop();
}

TEST_F(RelayTlsTest, PlaintextRequestToTheTlsPortIsDropped) {
  auto server = RelayServer::Create(Options());
  ASSERT_TRUE(server.ok());
  (*server)->Start();
  net::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), (*server)->port()));
  std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(socket, net::buffer(request));
  char buf[256];
  beast::error_code ec;
  std::size_t n = socket.read_some(net::buffer(buf), ec);
  // Either an immediate close or a TLS alert: never an HTTP answer.
  EXPECT_EQ(std::string(buf, n).find("HTTP/1.1"), std::string::npos);
  (*server)->Stop();
}

TEST_F(RelayTlsTest, KeyFileReadableByOthersIsRefusedAtStart) {
  ASSERT_EQ(chmod((dir_ + "/server.key").c_str(), 0644), 0);
  auto server = RelayServer::Create(Options());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(server.status().message().find("chmod 600"), std::string::npos);
}

}  // namespace
}  // namespace tether::relay
