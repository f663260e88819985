// server_support.h — what the `gptoss serve` tests share (test_server*.cpp): the tiny synthetic
// model on the CPU backend (made once per test process), a server on an ephemeral loopback port in
// a thread, httplib clients, a raw socket for disconnects, SSE parsing and the process's RSS.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "host/cli/session.h"
#include "host/server/server.h"

namespace gptoss::test {

using nlohmann::json;

// The tiny shape (4 layers, real widths, o200k vocabulary) on the CPU, context 128.
inline cli::Session& tiny_session() {
  static std::unique_ptr<cli::Session> session = [] {
    cli::ModelOptions m;
    m.synthetic = "tiny";
    m.backend = "cpu";
    m.threads = 2;
    m.max_context = 128;
    auto s = std::make_unique<cli::Session>(m, sampling::SamplingParams{}, 1);
    s->start(/*sampling_may_change=*/true);
    return s;
  }();
  return *session;
}

struct TestServer {
  server::Server srv;
  std::thread thread;
  int port = 0;
  std::string api_key;

  TestServer(cli::Session& session, server::ServerOptions o)
      : srv(session, [&] {
          o.host = "127.0.0.1";
          o.port = 0;
          o.log = false;
          return o;
        }()),
        api_key(o.api_key) {
    port = srv.bind();
    thread = std::thread([this] { srv.run(); });
    // Ready once /health answers (the accept loop runs).
    for (int i = 0; i < 500; ++i) {
      if (auto r = client().Get("/health"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("the server did not answer /health");
  }
  ~TestServer() {
    srv.stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(600, 0);
    c.set_write_timeout(60, 0);
    if (!api_key.empty()) c.set_bearer_token_auth(api_key.c_str());
    return c;
  }
  httplib::Result post(const std::string& path, const json& body) const {
    return client().Post(path.c_str(), body.dump(), "application/json");
  }
  // A metric's value from /metrics (the first line starting with `name`).
  double metric(const std::string& name) const {
    auto r = client().Get("/metrics");
    REQUIRE(r);
    std::istringstream in(r->body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    FAIL("no metric " << name);
    return 0;
  }
};

// The data lines of an SSE body: JSON objects, then "[DONE]" as a string.
inline std::vector<json> sse_events(const std::string& body) {
  std::vector<json> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("data: ", 0) != 0) continue;
    const std::string d = line.substr(6);
    out.push_back(d == "[DONE]" ? json("[DONE]") : json::parse(d));
  }
  return out;
}

// A plain TCP connection to the server, for requests cut off mid-stream.
struct RawConnection {
  int fd = -1;
  explicit RawConnection(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~RawConnection() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  void post(const std::string& path, const std::string& body, const std::string& extra = "") {
    const std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                            "application/json\r\n" + extra + "Content-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()));
  }
  // Reads until `what` was received (or the peer closed); returns all read.
  std::string read_until(const std::string& what) {
    std::string got;
    char buf[4096];
    while (got.find(what) == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, size_t(n));
    }
    return got;
  }
};

// This process's resident set in KiB.
inline long rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace gptoss::test
