// What the native kernels share: running a fixed split of the work on XLA's intra-op threads.
#ifndef PRDARTS_NATIVE_PARALLEL_H_
#define PRDARTS_NATIVE_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace prdarts {

// Runs fn(block, n0, n1) for a fixed split of n items (images, rows) into blocks, on the calling thread
// and XLA's pool. Blocks are claimed from a counter, so the caller never waits for a task that
// has not started: a pool busy elsewhere cannot deadlock it.
inline void ForBlocks(xla::ffi::ThreadPool& pool, int64_t n, int64_t blocks,
                      std::function<void(int64_t, int64_t, int64_t)> fn) {
  struct Shared {
    std::function<void(int64_t, int64_t, int64_t)> fn;
    int64_t n, blocks;
    std::atomic<int64_t> next{0}, done{0};
    void Drain() {
      for (int64_t b; (b = next.fetch_add(1)) < blocks;) {
        fn(b, n * b / blocks, n * (b + 1) / blocks);
        done.fetch_add(1, std::memory_order_release);
      }
    }
  };
  auto shared = std::make_shared<Shared>();
  shared->fn = std::move(fn);
  shared->n = n;
  shared->blocks = blocks;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), blocks - 1);
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([shared] { shared->Drain(); });
  shared->Drain();
  while (shared->done.load(std::memory_order_acquire) < blocks) std::this_thread::yield();
}

}  // namespace prdarts

#endif  // PRDARTS_NATIVE_PARALLEL_H_
