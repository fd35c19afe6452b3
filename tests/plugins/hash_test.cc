// Tests for plugins/hash: SHA-256 known-answer vectors (FIPS 180-2 examples), a 1 MiB
// random document against OpenSSL's EVP interface, bounds and concurrent runs.
#include <openssl/evp.h>

#include <random>
#include <thread>

#include "tests/plugins/loaded_plugin.h"

namespace keel::plugins {
namespace {

std::string hex(const std::vector<uint8_t>& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string text;
  for (uint8_t byte : bytes) text += {digits[byte >> 4], digits[byte & 15]};
  return text;
}

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

// The digest through OpenSSL's EVP interface, a different path from the plugin's SHA256().
std::vector<uint8_t> evp_sha256(const std::vector<uint8_t>& document) {
  std::vector<uint8_t> digest(EVP_MAX_MD_SIZE);
  unsigned int digest_bytes = 0;
  EXPECT_EQ(EVP_Digest(document.data(), document.size(), digest.data(), &digest_bytes, EVP_sha256(), nullptr), 1);
  digest.resize(digest_bytes);
  return digest;
}

std::vector<uint8_t> random_document(size_t bytes, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::vector<uint8_t> document(bytes);
  for (uint8_t& byte : document) byte = uint8_t(generator());
  return document;
}

TEST(HashPlugin, MatchesTheKnownAnswerVectors) {
  LoadedPlugin hash(KEEL_PLUGIN_PATH, "hash");
  ASSERT_TRUE(hash.ok());
  struct Vector {
    std::vector<uint8_t> document;
    std::string digest;
  };
  std::vector<Vector> vectors = {
      {bytes_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {{}, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::vector<uint8_t>(1'000'000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (const Vector& vector : vectors) {
    RunOutcome outcome = hash.run(vector.document);
    ASSERT_EQ(outcome.status, KEEL_STATUS_OK);
    EXPECT_EQ(hex(outcome.output), vector.digest) << vector.document.size() << " bytes";
  }
}

TEST(HashPlugin, AgreesWithOpenSslOnAOneMebibyteDocument) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  LoadedPlugin hash(KEEL_PLUGIN_PATH, "hash");
  ASSERT_TRUE(hash.ok());
  std::vector<uint8_t> document = random_document(1 << 20, seed);
  RunOutcome outcome = hash.run(document);
  ASSERT_EQ(outcome.status, KEEL_STATUS_OK);
  EXPECT_EQ(outcome.output, evp_sha256(document));
}

TEST(HashPlugin, RefusesDocumentsOverSixtyFourMebibytes) {
  LoadedPlugin hash(KEEL_PLUGIN_PATH, "hash");
  ASSERT_TRUE(hash.ok());
  std::vector<uint8_t> document(size_t(64) << 20, 'k');
  RunOutcome at_bound = hash.run(document);
  ASSERT_EQ(at_bound.status, KEEL_STATUS_OK);
  EXPECT_EQ(at_bound.output, evp_sha256(document));
  EXPECT_EQ(hash.status_of(oversized(document)), KEEL_STATUS_BAD_INPUT);
}

TEST(HashPlugin, AsksForThirtyTwoBytesOfOutput) {
  LoadedPlugin hash(KEEL_PLUGIN_PATH, "hash");
  ASSERT_TRUE(hash.ok());
  RunOutcome outcome = hash.run(bytes_of("abc"), 31);
  EXPECT_EQ(outcome.status, KEEL_STATUS_OUTPUT_TOO_SMALL);
  EXPECT_EQ(outcome.output_bytes, 32u);
  EXPECT_EQ(hash.run(bytes_of("abc"), 32).status, KEEL_STATUS_OK);
}

TEST(HashPlugin, ConcurrentRunsOnOneInstanceEachGetTheirOwnDigest) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  LoadedPlugin hash(KEEL_PLUGIN_PATH, "hash");
  ASSERT_TRUE(hash.ok());
  constexpr int thread_count = 4, runs_per_thread = 200;
  std::vector<std::vector<uint8_t>> documents, digests;
  for (int thread = 0; thread < thread_count; ++thread) {
    documents.push_back(random_document(1000 + thread, seed + thread));
    digests.push_back(evp_sha256(documents.back()));
  }
  std::vector<int> mismatches(thread_count, 0);
  std::vector<std::thread> threads;
  for (int thread = 0; thread < thread_count; ++thread) {
    threads.emplace_back([&, thread] {
      for (int run = 0; run < runs_per_thread; ++run) {
        RunOutcome outcome = hash.run(documents[thread], 64);
        mismatches[thread] += outcome.status != KEEL_STATUS_OK || outcome.output != digests[thread];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(thread_count, 0));
}

TEST(HashPlugin, TakesNoConfig) {
  Result<std::unique_ptr<sched::PluginLibrary>> library = sched::PluginLibrary::load(KEEL_PLUGIN_PATH);
  ASSERT_TRUE(library) << library.error().message;
  Result<sched::PluginInstance> instance = (*library)->init({{"algorithm", "md5"}});
  ASSERT_FALSE(instance);
  EXPECT_EQ(instance.error().message,
            std::string(KEEL_PLUGIN_PATH) + ": init failed: unknown config key 'algorithm' (hash takes no config)");
}

}  // namespace
}  // namespace keel::plugins
