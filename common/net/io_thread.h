// Internal to //common/net: an io_context run by one dedicated thread, owned by a client object
// (a sender channel or a listener). Destroying it stops the loop, joins the thread and destroys
// the handlers that never ran, which releases the objects they kept alive.
#ifndef TETHER_COMMON_NET_IO_THREAD_H_
#define TETHER_COMMON_NET_IO_THREAD_H_

#include <cstdio>
#include <exception>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace tether::net::internal {

class IoThread {
 public:
  IoThread() : context_(1), work_(context_.get_executor()) {
    thread_ = std::thread([this] {
      // Handlers do not throw (STYLE); a throw here is a bug, reported and then fatal.
      try {
        context_.run();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "tether relay client: I/O handler threw: %s\n", e.what());
        std::terminate();
      }
    });
  }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;
  ~IoThread() { Stop(); }

  boost::asio::io_context& context() { return context_; }

  // True on the I/O thread itself (where Stop() must not be called).
  bool InThisThread() const { return std::this_thread::get_id() == thread_.get_id(); }

  // Stops the loop at once (pending handlers are not run) and joins the thread. Idempotent.
  void Stop() {
    work_.reset();
    context_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  boost::asio::io_context context_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace tether::net::internal

#endif  // TETHER_COMMON_NET_IO_THREAD_H_
