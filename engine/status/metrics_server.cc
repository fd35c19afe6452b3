#include "engine/status/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include "engine/status/status_format.h"

namespace keel::status {

namespace {

// Closes the descriptor it holds.
struct Descriptor {
  int fd = -1;
  explicit Descriptor(int fd_) : fd(fd_) {}
  Descriptor(Descriptor&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  Descriptor& operator=(Descriptor&&) = delete;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

// Writes all of text, or gives up at the socket's send timeout or an error (the scraper
// left: nothing to do but close).
void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t written = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    text.remove_prefix(size_t(written));
  }
}

void respond(int fd, const char* status, const char* content_type, std::string_view body) {
  std::string head = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + content_type +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  write_all(fd, head);
  write_all(fd, body);
}

// Reads the request head (up to the blank line). Empty when the peer sent nothing usable
// in time; `too_large` when the head passed metrics_request_bytes_max.
std::string read_request_head(int fd, bool& too_large) {
  std::string head;
  char buffer[1024];
  too_large = false;
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return head;  // closed, error or the receive timeout
    head.append(buffer, size_t(got));
    if (head.size() > metrics_request_bytes_max) {
      too_large = true;
      return head;
    }
  }
  return head;
}

}  // namespace

struct MetricsServer::State {
  EngineStatus status;
  Descriptor listener;
  Descriptor wake;  // an eventfd: written to stop the thread
  uint16_t port = 0;
  std::atomic<uint64_t> served{0};
  std::optional<StatusSample> tick;  // the last one-second sample: gauges are rates since it
  uint64_t tick_ns = 0;
  std::thread thread;

  State(EngineStatus status_, int listener_, int wake_)
      : status(std::move(status_)), listener(listener_), wake(wake_) {}

  void serve(int fd) {
    timeval timeout{metrics_io_timeout_ms / 1000, long(metrics_io_timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    bool too_large = false;
    std::string head = read_request_head(fd, too_large);
    if (too_large) return respond(fd, "431 Request Header Fields Too Large", "text/plain", "request too large\n");
    std::string_view line(head);
    line = line.substr(0, line.find_first_of("\r\n"));
    if (line.empty()) return;  // nothing arrived in time: just close
    size_t first_space = line.find(' ');
    size_t second_space = first_space == std::string_view::npos ? first_space : line.find(' ', first_space + 1);
    if (second_space == std::string_view::npos)
      return respond(fd, "400 Bad Request", "text/plain", "expected: GET /metrics HTTP/1.1\n");
    std::string_view method = line.substr(0, first_space);
    std::string_view target = line.substr(first_space + 1, second_space - first_space - 1);
    if (method != "GET" && method != "HEAD")
      return respond(fd, "405 Method Not Allowed", "text/plain", "only GET /metrics\n");
    std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics") return respond(fd, "404 Not Found", "text/plain", "keel serves /metrics only\n");
    StatusSample now = status.sample();
    StatusReport report = make_status_report(tick ? *tick : now, now);
    std::string body = prometheus_text(report, now);
    if (method == "HEAD") body.clear();
    respond(fd, "200 OK", prometheus_content_type, body);
    served.fetch_add(1, std::memory_order_relaxed);
  }

  void run() {
    for (;;) {
      uint64_t now_ns = shm::monotonic_ns();
      if (!tick || now_ns - tick_ns >= uint64_t(metrics_tick_ms) * 1'000'000) {
        tick = status.sample();
        tick_ns = now_ns;
      }
      pollfd fds[2] = {{listener.fd, POLLIN, 0}, {wake.fd, POLLIN, 0}};
      int ready = ::poll(fds, 2, int(metrics_tick_ms / 4));
      if (ready < 0 && errno != EINTR) return;
      if (fds[1].revents != 0) return;  // asked to stop
      if (ready <= 0 || (fds[0].revents & POLLIN) == 0) continue;
      int connection = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (connection < 0) continue;  // the peer gave up already, or descriptors ran out: try again later
      Descriptor closing(connection);
      serve(connection);
    }
  }
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(EngineStatus status, const std::string& address,
                                                            uint16_t port) {
  std::string where = "metrics: " + address + ":" + std::to_string(port);
  sockaddr_in socket_address{};
  socket_address.sin_family = AF_INET;
  socket_address.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &socket_address.sin_addr) != 1)
    return make_error(where, "not an IPv4 address");
  Descriptor listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (listener.fd < 0) return make_error(where, std::string("cannot open a socket: ") + std::strerror(errno));
  int yes = 1;
  // A restarted engine may bind while the previous one's connections sit in TIME_WAIT.
  setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&socket_address), sizeof socket_address) != 0)
    return make_error(where, std::string("cannot listen: ") + std::strerror(errno));
  if (::listen(listener.fd, 8) != 0) return make_error(where, std::string("cannot listen: ") + std::strerror(errno));
  socklen_t length = sizeof socket_address;
  if (::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&socket_address), &length) != 0)
    return make_error(where, std::string("cannot read the bound port: ") + std::strerror(errno));
  Descriptor wake(::eventfd(0, EFD_CLOEXEC));
  if (wake.fd < 0) return make_error(where, std::string("cannot make an eventfd: ") + std::strerror(errno));
  auto state = std::make_unique<State>(std::move(status), std::exchange(listener.fd, -1), std::exchange(wake.fd, -1));
  state->port = ntohs(socket_address.sin_port);
  State* running = state.get();
  state->thread = std::thread([running] { running->run(); });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(state)));
}

MetricsServer::MetricsServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

MetricsServer::~MetricsServer() {
  uint64_t one = 1;
  // The eventfd cannot be full (one write per server); a failure would leave the thread
  // running past its segment, so it is a bug worth stopping on.
  ssize_t written = ::write(state_->wake.fd, &one, sizeof one);
  if (written != sizeof one) std::abort();
  state_->thread.join();
}

uint16_t MetricsServer::port() const { return state_->port; }
uint64_t MetricsServer::requests_served() const { return state_->served.load(std::memory_order_relaxed); }

}  // namespace keel::status
