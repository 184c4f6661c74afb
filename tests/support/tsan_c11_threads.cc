// Linked into test binaries of TSan builds only.
//
// Debian's librdkafka starts its threads with C11 thrd_create(), which the
// GCC 12 / LLVM 14 ThreadSanitizer runtime does not intercept: such threads
// are unknown to TSan, and the first instrumented callback they run (our
// queue-event and rebalance callbacks) crashes it. Defining thrd_create in
// the executable interposes glibc's and routes it through pthread_create,
// which TSan does intercept.
#include <pthread.h>
#include <threads.h>

#include <cstdint>

namespace {

struct Start {
  thrd_start_t function;
  void* arg;
};

void* trampoline(void* p) {
  const Start start = *static_cast<Start*>(p);
  delete static_cast<Start*>(p);
  // thrd_join reads the int result back out of the pointer, as glibc does.
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(start.function(start.arg)));
}

}  // namespace

extern "C" int thrd_create(thrd_t* thread, thrd_start_t function, void* arg) {
  auto* start = new Start{function, arg};
  if (pthread_create(thread, nullptr, &trampoline, start) != 0) {
    delete start;
    return thrd_error;
  }
  return thrd_success;
}

// Detach and join must go through pthread too, or TSan reports the threads
// as leaked.
extern "C" int thrd_detach(thrd_t thread) { return pthread_detach(thread) == 0 ? thrd_success : thrd_error; }

extern "C" int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  if (pthread_join(thread, &value) != 0) return thrd_error;
  if (result) *result = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
  return thrd_success;
}
