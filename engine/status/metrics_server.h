// engine/status/metrics_server.h: the engine's GET /metrics endpoint — a plain TCP
// listener on a loopback address ([metrics] listen) serving prometheus_text() of the
// engine's own segment, from a thread of its own (not on a core), so a scrape never
// touches a tile: it reads the same counters `keel status` reads.
//
//   Result<std::unique_ptr<MetricsServer>> server = MetricsServer::start(std::move(status), "127.0.0.1", 9464);
//   if (!server) std::fprintf(stderr, "keel: %s\n", server.error().message.c_str());  // runs on without it
//   ... (*server)->port() ...   // the bound port (when 0 asked for any free one)
//   server->reset();            // stops the thread and closes the socket
//
// Limits: one connection at a time (a scraper every few seconds needs no more), a request
// of at most metrics_request_bytes_max bytes read within metrics_io_timeout_ms, the
// response written within the same timeout; anything else gets one HTTP error and the
// connection closed. Gauges (rates, p99) are over the time since the server's previous
// one-second tick, so they span 1 to 2 s.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/status/engine_status.h"
#include "error/result.h"

namespace keel::status {

inline constexpr size_t metrics_request_bytes_max = 8192;
inline constexpr uint32_t metrics_io_timeout_ms = 1000;
inline constexpr uint32_t metrics_tick_ms = 1000;

class MetricsServer {
 public:
  // Binds address:port (IPv4; port 0: any free one), listens and starts the thread. The
  // error is one line naming the address and the reason ("address already in use").
  static Result<std::unique_ptr<MetricsServer>> start(EngineStatus status, const std::string& address, uint16_t port);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  uint16_t port() const;
  uint64_t requests_served() const;  // answered with 200

  struct State;  // metrics_server.cc

 private:
  explicit MetricsServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace keel::status
