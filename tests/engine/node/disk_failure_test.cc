// The disk-failure tests of the ledger, through the whole engine: a real `keel run` child
// under load from a client in this process has its log writes or its fdatasyncs start
// failing. The engine must stop on its own with one clear line naming the file and the
// reason, exit non-zero, and must not have acknowledged anything it did not make durable:
// every transaction with a durable receipt is in the logs, and in the log that failed, in
// a batch older than the one that failed (another log's part of that batch may have been
// acknowledged: each log's part is reported durable on its own fdatasync), and after a
// restart without the fault the ledger recovers and `keel verify` passes. Seeds are
// printed.
//
// The faults, none of which needs root:
//   - a write that fails: RLIMIT_FSIZE on the engine (writes past it fail with EFBIG;
//     SIGXFSZ is ignored so they return instead of killing the engine). It is set with
//     prlimit once the engine is up and the accounts are open, a little past the largest
//     log file: set before exec it would also refuse the engine's shared-memory segment
//     (tens of MB, a file in /dev/shm). It reaches the io_uring backend too: the kernel
//     does the writes on the engine's behalf, under the engine's limits.
//   - a full disk (a real ENOSPC): the data directory on a small tmpfs mounted in a
//     private user and mount namespace; skipped where unprivileged user namespaces are off.
//   - an fdatasync that fails (EIO): an LD_PRELOAD shim (fail_fdatasync_shim.c). Only the
//     psync backend calls fdatasync through libc; io_uring's fsync is done by the kernel
//     and cannot be intercepted this way.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>

#include "engine/client/client.h"
#include "engine/ledger/block.h"
#include "engine/ledger/transaction.h"
#include "engine/node/recovery.h"
#include "engine/persist/recovery.h"
#include "shm/segment.h"
#include "tests/engine/node/engine_process.h"
#include "tests/engine/node/logged_transactions.h"

#if defined(__SANITIZE_ADDRESS__)
#define KEEL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEL_TEST_ASAN 1
#endif
#endif

namespace keel::node {
namespace {

namespace fs = std::filesystem;
using testing::attach_when_up;

constexpr uint32_t shards = 2;
constexpr uint64_t accounts = 64;
constexpr int64_t opening_balance = 1'000'000;
constexpr uint64_t fault_wait_ms = 15'000;  // the fault must stop the engine within this

struct Fault {
  uint64_t file_bytes_more = 0;     // RLIMIT_FSIZE: this far past the largest log file; 0: none
  uint64_t tmpfs_bytes = 0;         // data_dir on a tmpfs this big; 0: the real directory
  long fdatasync_calls_ok = -1;     // the shim fails every fdatasync after this many; -1: none
};

struct Scratch {
  fs::path directory, data, config;
  std::string instance;
};

Scratch make_scratch(const std::string& name, const std::string& backend) {
  Scratch scratch;
  scratch.directory = fs::temp_directory_path() / ("keel-disk-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(scratch.directory);
  fs::create_directories(scratch.directory / "data");
  scratch.data = scratch.directory / "data";
  scratch.instance = "disk-" + name + "-" + std::to_string(getpid());
  scratch.config = scratch.directory / "engine.toml";
  // No snapshots: the faults are aimed at the log, and every block must stay in it for
  // the checks (snapshots let the persist tile drop old segments).
  std::ofstream(scratch.config) << "[engine]\ninstance = \"" << scratch.instance << "\"\nidle = \"sleep\"\n"
                                << "[[chain]]\nname = \"bank\"\nshards = " << shards << "\n"
                                << "block_txs_max = 256\nblock_us_max = 500\n"
                                << "[ledger]\ndata_dir = \"" << scratch.data.string() << "\"\n"
                                << "persist_backend = \"" << backend << "\"\nsnapshot_every_blocks = 0\n"
                                << "[load]\nenabled = false\n[pipeline]\nenabled = false\n";
  return scratch;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Kills and reaps a child the test still owns when it ends early (a failed ASSERT).
struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// Removes the engine's segment, which an engine that was killed or failed leaves behind.
struct SegmentGuard {
  std::string name;
  ~SegmentGuard() { shm::Segment::remove(name); }
};

// In a forked child: a new user and mount namespace (this uid as root there), and a tmpfs
// of `bytes` over `directory`, seen by this process and its children alone.
bool mount_private_tmpfs(const fs::path& directory, uint64_t bytes) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
  auto write_file = [](const char* path, const std::string& text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && write(fd, text.data(), text.size()) == ssize_t(text.size());
    if (fd >= 0) close(fd);
    return ok;
  };
  if (!write_file("/proc/self/setgroups", "deny") ||
      !write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n") ||
      !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n"))
    return false;
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  std::string options = "size=" + std::to_string(bytes);
  return mount("tmpfs", directory.c_str(), "tmpfs", 0, options.c_str()) == 0;
}

// Whether this machine lets an unprivileged process do mount_private_tmpfs.
bool private_tmpfs_works(const fs::path& directory) {
  pid_t pid = fork();
  if (pid == 0) _exit(mount_private_tmpfs(directory, 1 << 20) ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

[[noreturn]] void exec_engine(const Scratch& scratch, const std::string& duration) {
  execl(KEEL_BINARY, "keel", "run", "--config", scratch.config.c_str(), "--duration", duration.c_str(), nullptr);
  _exit(127);
}

// Starts `keel run` with the fault; its stdout and stderr go to out/err. With a tmpfs the
// child is a holder that runs the engine as its own child, then copies the tmpfs's
// contents to scratch.directory/"copy" (the tmpfs ends with the holder) and ends as the
// engine ended (its exit status, or its signal).
pid_t start_engine(const Scratch& scratch, const Fault& fault, const std::string& duration, const fs::path& out,
                   const fs::path& err) {
  std::fflush(stdout);  // or the child's copy of the buffer is printed again
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) _exit(126);
  if (fault.file_bytes_more > 0) signal(SIGXFSZ, SIG_IGN);  // stays so across exec: writes return EFBIG
  if (fault.fdatasync_calls_ok >= 0) {
    setenv("LD_PRELOAD", KEEL_FAIL_FDATASYNC_SHIM, 1);
    setenv("KEEL_FAIL_FDATASYNC_AFTER", std::to_string(fault.fdatasync_calls_ok).c_str(), 1);
    setenv("KEEL_FAIL_FDATASYNC_REPORT", (scratch.directory / "shim.out").c_str(), 1);
#if defined(KEEL_TEST_ASAN)
    // ASan wants its runtime first in the library list and refuses to start otherwise;
    // the shim defines nothing ASan intercepts, so the order does not matter here.
    const char* asan_options = getenv("ASAN_OPTIONS");
    std::string options = asan_options != nullptr && *asan_options != 0 ? std::string(asan_options) + ":" : "";
    setenv("ASAN_OPTIONS", (options + "verify_asan_link_order=0").c_str(), 1);
#endif
  }
  if (fault.tmpfs_bytes == 0) exec_engine(scratch, duration);
  if (!mount_private_tmpfs(scratch.data, fault.tmpfs_bytes)) _exit(125);
  pid_t engine = fork();
  if (engine == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    exec_engine(scratch, duration);
  }
  int status = 0;
  waitpid(engine, &status, 0);
  std::error_code failed;
  fs::copy(scratch.data, scratch.directory / "copy", fs::copy_options::recursive, failed);
  if (failed) _exit(124);
  if (WIFSIGNALED(status)) {
    signal(WTERMSIG(status), SIG_DFL);
    raise(WTERMSIG(status));
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 124);
}

// Durable applied receipts: transaction hash -> the height the receipt gave.
using Acknowledged = std::map<std::string, uint64_t>;

void collect(client::Client& client, Acknowledged& acked, uint32_t wait_ms) {
  static std::vector<client::ReceiptMessage> receipts(256);  // one test thread
  size_t got = wait_ms ? client.wait_receipts(receipts, wait_ms) : client.poll_receipts(receipts);
  for (size_t index = 0; index < got; ++index) {
    const client::ReceiptMessage& receipt = receipts[index];
    if (receipt.status != uint16_t(ledger::TxStatus::applied)) continue;
    EXPECT_GT(receipt.height, 0u) << "an applied receipt without a durable block";
    acked[std::string(reinterpret_cast<const char*>(receipt.tx_hash), 32)] = receipt.height;
  }
}

// Opens the accounts, then submits transfers until the engine's process exits (its exit
// status goes to *status) or fault_wait_ms passes (returns false; the engine still runs).
// Once the accounts are open (their receipts in), calls after_opening: the fault begins.
bool drive_until_exit(client::Client& client, pid_t engine, std::mt19937_64& random, Acknowledged& acked,
                      const std::function<void()>& after_opening, int* status) {
  uint32_t chain = *client.chain_index("bank");
  uint64_t nonce = 0;
  uint64_t deadline = shm::monotonic_ns() + fault_wait_ms * 1'000'000;
  auto exited = [&] { return waitpid(engine, status, WNOHANG) == engine; };
  for (uint64_t account = 1; account <= accounts; ++account) {
    std::vector<std::byte> tx = ledger::encode_create_account(++nonce, account, opening_balance);
    while (!*client.try_submit(chain, nonce, tx)) {
      collect(client, acked, 1);
      if (exited()) return true;
    }
  }
  while (client.in_flight() > 0 && shm::monotonic_ns() < deadline) {
    collect(client, acked, 1);
    if (exited()) return true;
  }
  after_opening();
  for (uint64_t round = 0; shm::monotonic_ns() < deadline; ++round) {
    uint64_t from = 1 + random() % accounts, to = 1 + random() % accounts;
    std::vector<std::byte> tx = ledger::encode_transfer(++nonce, from, to, 1 + random() % 1000);
    Result<bool> queued = client.try_submit(chain, nonce, tx);
    EXPECT_TRUE(queued);
    if (!queued || !*queued) collect(client, acked, 1);
    collect(client, acked, 0);
    if (round % 64 == 0 && exited()) return true;
  }
  return exited();
}

using LedgerTx = testing::LoggedTransaction;

std::map<std::string, LedgerTx> read_ledger(const fs::path& data_dir) {
  std::map<std::string, LedgerTx> ledger;
  testing::read_logged_transactions(data_dir, "bank", shards, &ledger);
  return ledger;
}

// The largest log file under data_dir.
uint64_t largest_log_file(const fs::path& data_dir) {
  uint64_t largest = 0;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(data_dir))
    if (entry.is_regular_file() && entry.path().extension() == ".klog") largest = std::max(largest, entry.file_size());
  return largest;
}

// The lines the engine printed as errors (`keel: ...`).
// The engine's error lines, but for the notes that a spare segment could not be written
// (the full disk hits that background write too; the engine goes on appending), each of
// which must name the spare file.
std::vector<std::string> error_lines(const fs::path& err) {
  std::vector<std::string> lines;
  std::istringstream text(read_text(err));
  for (std::string line; std::getline(text, line);) {
    if (line.rfind("keel: ", 0) != 0) continue;
    if (line.find("(segment not preallocated: ") != std::string::npos) {
      EXPECT_NE(line.find("/segment.spare: "), std::string::npos) << line;
      continue;
    }
    lines.push_back(line);
  }
  return lines;
}

// The failed run's end: how the engine exited and what the client was told.
struct FailedRun {
  int status = 0;
  Acknowledged acked;
};

// Starts the engine with the fault and loads it until it stops on its own.
void run_until_failure(const std::string& name, const Scratch& scratch, const Fault& fault, std::mt19937_64& random,
                       uint64_t seed, FailedRun& run) {
  std::string segment = "keel-" + scratch.instance;
  SegmentGuard segment_guard{segment};  // declared first: removed after the engine is gone
  ChildGuard engine{start_engine(scratch, fault, "10m", scratch.directory / "run.out", scratch.directory / "run.err")};
  std::unique_ptr<client::Client> client = attach_when_up(segment, engine.pid);
  ASSERT_NE(client, nullptr) << "the engine did not come up; see " << scratch.directory / "run.err" << " (seed "
                             << seed << ")";
  uint64_t fault_ns = shm::monotonic_ns();
  auto start_fault = [&] {
    fault_ns = shm::monotonic_ns();
    if (fault.file_bytes_more == 0) return;  // the other faults are there from the start
    // Whole 4 KiB blocks: the log may be written with O_DIRECT, where a write the limit
    // cuts to an unaligned length fails with EINVAL before it could say EFBIG.
    uint64_t limit = (largest_log_file(scratch.data) + fault.file_bytes_more + 4095) / 4096 * 4096;
    rlimit file_size{limit, limit};
    EXPECT_EQ(prlimit(engine.pid, RLIMIT_FSIZE, &file_size, nullptr), 0) << strerror(errno);
    std::printf("%s: log writes past %llu bytes fail from now on\n", name.c_str(), (unsigned long long)limit);
  };
  bool exited = drive_until_exit(*client, engine.pid, random, run.acked, start_fault, &run.status);
  ASSERT_TRUE(exited) << "the engine neither failed nor stopped within " << fault_wait_ms
                      << " ms of load (a hang, or too little data); seed " << seed;
  engine.pid = -1;
  collect(*client, run.acked, 0);  // receipts it published before it died count too
  std::printf("%s: engine stopped %.2f s after the accounts were open; %zu durable receipts\n", name.c_str(),
              double(shm::monotonic_ns() - fault_ns) / 1e9, run.acked.size());
}

// Stopped on its own, non-zero, with one clear line naming the log file and the reason
// (a regular expression).
// What the engine's failure line names: the batch not durable (0 if it names none) and the
// shard whose log file failed.
struct FailedLog {
  uint64_t batch = 0;
  uint32_t shard = 0;
};

FailedLog check_failure_report(const std::string& name, const Scratch& scratch, int status, const std::string& reason,
                               uint64_t seed) {
  if (!WIFEXITED(status)) {
    ADD_FAILURE() << "the engine did not exit on its own: "
                  << (WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "?") << "; seed " << seed;
    return {};
  }
  EXPECT_NE(WEXITSTATUS(status), 0) << "the engine exited 0 after its disk failed; seed " << seed;
  EXPECT_LT(WEXITSTATUS(status), 124) << "the engine could not be started (" << WEXITSTATUS(status)
                                      << ": 124-126 the test's set-up in the child, 127 exec)";
  std::vector<std::string> lines = error_lines(scratch.directory / "run.err");
  if (lines.size() != 1) {
    ADD_FAILURE() << "want one error line; stderr:\n" << read_text(scratch.directory / "run.err");
    return {};
  }
  const std::string& line = lines[0];
  std::printf("%s: %s\n", name.c_str(), line.c_str());
  EXPECT_NE(line.find(scratch.data.string() + "/bank/"), std::string::npos) << "names no log file: " << line;
  EXPECT_NE(line.find(".klog"), std::string::npos) << "names no log file: " << line;
  EXPECT_TRUE(std::regex_search(line, std::regex(reason))) << "does not say '" << reason << "': " << line;
  std::smatch batch;
  // "batch 7 is not durable", or with two commits in flight "batches 7 to 8 are ...".
  if (!std::regex_search(line, batch, std::regex("batch(?:es)? ([0-9]+)(?: to [0-9]+)? (?:is|are) not durable"))) {
    ADD_FAILURE() << "does not name the batch that is not durable: " << line;
    return {};
  }
  std::smatch shard;
  if (!std::regex_search(line, shard, std::regex("/bank/([0-9]+)/"))) {
    ADD_FAILURE() << "does not name the shard's log: " << line;
    return {};
  }
  return FailedLog{std::stoull(batch[1]), uint32_t(std::stoul(shard[1]))};
}

// Nothing acknowledged that is not in the logs, at the receipt's height, and in the failed
// log in a batch before the failed one: that batch's records may well be on disk (a
// failed fdatasync leaves them in the page cache), but none of its blocks in that log may
// have been receipted. Another log's part of the failed batch may have been: it was
// durable on its own.
void check_acknowledged(const fs::path& data_dir, const Acknowledged& acked, FailedLog failed, uint64_t seed) {
  const uint64_t failed_batch = failed.batch;
  EXPECT_GT(acked.size(), 0u) << "nothing was acknowledged before the fault: the test proves little";
  std::map<std::string, LedgerTx> ledger = read_ledger(data_dir);
  size_t missing = 0, wrong_height = 0, in_failed_batch = 0;
  for (const auto& [hash, height] : acked) {
    auto found = ledger.find(hash);
    if (found == ledger.end()) {
      ++missing;
      continue;
    }
    wrong_height += found->second.height != height;
    in_failed_batch += failed_batch > 0 && found->second.shard == failed.shard && found->second.batch >= failed_batch;
  }
  EXPECT_EQ(missing, 0u) << "acknowledged transactions missing from the logs (seed " << seed << ")";
  EXPECT_EQ(wrong_height, 0u) << "receipts whose height differs from their block's (seed " << seed << ")";
  EXPECT_EQ(in_failed_batch, 0u) << "receipts for blocks of shard " << failed.shard << " in batch " << failed_batch
                                 << " or later, which never became durable there (seed " << seed << ")";
}

// A restart without the fault recovers everything acknowledged, and `keel verify` agrees.
void check_restart(const Scratch& scratch, const Acknowledged& acked, uint64_t seed) {
  SegmentGuard segment_guard{"keel-" + scratch.instance};
  ChildGuard restart{start_engine(scratch, Fault{}, "300ms", scratch.directory / "restart.out",
                                  scratch.directory / "restart.err")};
  int status = 0;
  for (int waited_ms = 0; waitpid(restart.pid, &status, WNOHANG) != restart.pid; waited_ms += 10) {
    ASSERT_LT(waited_ms, 60'000) << "the restart did not end within 60 s; see " << scratch.directory / "restart.err";
    usleep(10'000);
  }
  restart.pid = -1;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the restart failed; see " << scratch.directory / "restart.err" << ":\n"
      << read_text(scratch.directory / "restart.err") << " (seed " << seed << ")";
  std::map<std::string, LedgerTx> ledger = read_ledger(scratch.data);
  size_t missing = 0;
  for (const auto& [hash, height] : acked) missing += ledger.count(hash) == 0;
  EXPECT_EQ(missing, 0u) << "acknowledged transactions lost across the restart (seed " << seed << ")";
  std::string command = std::string(KEEL_BINARY) + " verify --data-dir " + scratch.data.string() + " > " +
                        (scratch.directory / "verify.out").string() + " 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << "keel verify failed:\n"
                                             << read_text(scratch.directory / "verify.out") << " (seed " << seed
                                             << ")";
}

// The whole scenario: load until the fault stops the engine, then the checks.
void run_scenario(const std::string& name, const std::string& backend, const Fault& fault, const std::string& reason,
                  std::mt19937_64& random, uint64_t seed) {
  Scratch scratch = make_scratch(name, backend);
  FailedRun run;
  run_until_failure(name, scratch, fault, random, seed, run);
  if (::testing::Test::HasFatalFailure()) return;
  FailedLog failed = check_failure_report(name, scratch, run.status, reason, seed);
  if (fault.tmpfs_bytes > 0) {  // what the tmpfs held when the engine stopped
    fs::remove_all(scratch.data);
    fs::rename(scratch.directory / "copy", scratch.data);
  }
  check_acknowledged(scratch.data, run.acked, failed, seed);
  check_restart(scratch, run.acked, seed);
  if (!::testing::Test::HasFailure()) fs::remove_all(scratch.directory);
}

// Whether io_uring works here (`keel --version` says); without it the engine would fall
// back to psync and an io_uring case would test psync twice.
bool io_uring_works() {
  std::string command = std::string(KEEL_BINARY) + " --version";
  FILE* version = popen(command.c_str(), "r");
  if (version == nullptr) return false;
  std::string text;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, version) != nullptr) text += buffer;
  pclose(version);
  return text.find("io_uring available") != std::string::npos;
}

uint64_t print_seed() {
  uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", (unsigned long long)seed);
  return seed;
}

// Reached within a fraction of a second of load.
Fault write_limit(std::mt19937_64& random) { return Fault{.file_bytes_more = (64u << 10) + random() % (1u << 20)}; }

TEST(DiskFailure, FailedWriteStopsTheEngineIoUring) {
  if (!io_uring_works()) GTEST_SKIP() << "io_uring is not available here (keel --version)";
  uint64_t seed = print_seed();
  std::mt19937_64 random(seed);
  run_scenario("efbig-uring", "io_uring", write_limit(random), "File too large", random, seed);
}

TEST(DiskFailure, FailedWriteStopsTheEnginePsync) {
  uint64_t seed = print_seed();
  std::mt19937_64 random(seed);
  run_scenario("efbig-psync", "psync", write_limit(random), "File too large", random, seed);
}

void run_full_disk(const std::string& name, const std::string& backend) {
  uint64_t seed = print_seed();
  std::mt19937_64 random(seed);
  fs::path probe = fs::temp_directory_path() / ("keel-disk-probe-" + std::to_string(getpid()));
  fs::create_directories(probe);
  bool works = private_tmpfs_works(probe);
  fs::remove_all(probe);
  if (!works) GTEST_SKIP() << "no unprivileged user and mount namespaces here: cannot mount a small tmpfs";
  if (backend == "io_uring" && !io_uring_works()) GTEST_SKIP() << "io_uring is not available here (keel --version)";
  Fault fault{.tmpfs_bytes = (1u << 20) + random() % (2u << 20)};
  run_scenario(name, backend, fault, "No space left on device", random, seed);
}

TEST(DiskFailure, FullDiskStopsTheEngineIoUring) { run_full_disk("enospc-uring", "io_uring"); }
TEST(DiskFailure, FullDiskStopsTheEnginePsync) { run_full_disk("enospc-psync", "psync"); }

// psync only: the shim replaces libc's fdatasync, which io_uring never calls.
TEST(DiskFailure, FailedFdatasyncStopsTheEnginePsync) {
  uint64_t seed = print_seed();
  std::mt19937_64 random(seed);
  Fault fault{.fdatasync_calls_ok = long(200 + random() % 800)};
  run_scenario("eio-fdatasync", "psync", fault, "fdatasync after writing .* failed: Input/output error", random, seed);
}

}  // namespace
}  // namespace keel::node
