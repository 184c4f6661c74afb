// Linked into executables of TSan builds only.
//
// Debian's librdkafka uses C11 threads: thrd_create(), mtx_*() and cnd_*().
// glibc implements those on top of its pthread functions through internal
// calls that the GCC 12 / LLVM 14 ThreadSanitizer runtime does not
// intercept, so:
//  - threads started by thrd_create are unknown to TSan, and the first
//    instrumented callback they run (our queue-event and rebalance
//    callbacks) crashes it;
//  - librdkafka's locks and condition variables are invisible, so every
//    hand-off through its queues (a record fetched on a broker thread and
//    read on our poll thread, a delivery report served on our delivery
//    thread) looks like a race.
// Defining these functions in the executable interposes glibc's and routes
// them through the pthread functions TSan does intercept. glibc's mtx_t,
// cnd_t and once_flag have the layout of pthread_mutex_t, pthread_cond_t and
// pthread_once_t (glibc casts between them the same way), and every call
// from librdkafka comes here, so no object is ever touched by both
// implementations.
//
// librdkafka's pthread rwlocks (topic and metadata locks) are intercepted
// by TSan, but scripts/tsan.supp has `called_from_lib:librdkafka.so.1`,
// which turns every interceptor called directly from librdkafka into a
// pass-through, locks included. The rwlock functions below forward to
// TSan's interceptors, so the call comes from here (not ignored) and the
// lock is seen. Our own std::shared_mutex goes through them too, to the
// same interceptor it would reach anyway.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <threads.h>

#include <cstdint>
#include <string_view>

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

// pthread error numbers to the C11 result codes, as glibc maps them.
int c11_result(int pthread_error) {
  switch (pthread_error) {
    case 0: return thrd_success;
    case EBUSY: return thrd_busy;
    case ETIMEDOUT: return thrd_timedout;
    case ENOMEM: return thrd_nomem;
    default: return thrd_error;
  }
}

// Destroying one of librdkafka's locks. librdkafka frees an object (and
// destroys its locks) when its reference count, an uninstrumented atomic,
// drops to zero; TSan cannot see that ordering and reports the destroy as a
// race with the last lock or unlock on another thread. scripts/tsan.supp
// suppresses races in these three functions by name: only librdkafka's own
// locks reach them (our rwlocks are destroyed through the plain
// interceptor below).
[[gnu::noinline]] void prosody_tsan_librdkafka_destroy_mutex(pthread_mutex_t* m) { pthread_mutex_destroy(m); }
[[gnu::noinline]] void prosody_tsan_librdkafka_destroy_cond(pthread_cond_t* c) { pthread_cond_destroy(c); }
[[gnu::noinline]] int prosody_tsan_librdkafka_destroy_rwlock(pthread_rwlock_t* l);

// Whether `pc` lies in librdkafka (as the return address of a call from it).
bool from_librdkafka(const void* pc) {
  Dl_info info;
  return dladdr(pc, &info) != 0 && info.dli_fname != nullptr && std::string_view(info.dli_fname).find("librdkafka") != std::string_view::npos;
}

pthread_mutex_t* as_pthread(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* as_pthread(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }

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

extern "C" int mtx_init(mtx_t* m, int type) {
  // The types glibc accepts: plain or timed, optionally recursive.
  if ((type & ~mtx_recursive) != mtx_plain && (type & ~mtx_recursive) != mtx_timed) return thrd_error;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  const int e = pthread_mutex_init(as_pthread(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return c11_result(e);
}

extern "C" int mtx_lock(mtx_t* m) { return c11_result(pthread_mutex_lock(as_pthread(m))); }
extern "C" int mtx_trylock(mtx_t* m) { return c11_result(pthread_mutex_trylock(as_pthread(m))); }
extern "C" int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict until) {
  return c11_result(pthread_mutex_timedlock(as_pthread(m), until));
}
extern "C" int mtx_unlock(mtx_t* m) { return c11_result(pthread_mutex_unlock(as_pthread(m))); }
extern "C" void mtx_destroy(mtx_t* m) { prosody_tsan_librdkafka_destroy_mutex(as_pthread(m)); }

extern "C" int cnd_init(cnd_t* c) { return c11_result(pthread_cond_init(as_pthread(c), nullptr)); }
extern "C" int cnd_signal(cnd_t* c) { return c11_result(pthread_cond_signal(as_pthread(c))); }
extern "C" int cnd_broadcast(cnd_t* c) { return c11_result(pthread_cond_broadcast(as_pthread(c))); }
extern "C" int cnd_wait(cnd_t* c, mtx_t* m) { return c11_result(pthread_cond_wait(as_pthread(c), as_pthread(m))); }
// C11's deadline is TIME_UTC, i.e. CLOCK_REALTIME: the default clock of a
// condition variable made by cnd_init above.
extern "C" int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict until) {
  return c11_result(pthread_cond_timedwait(as_pthread(c), as_pthread(m), until));
}
extern "C" void cnd_destroy(cnd_t* c) { prosody_tsan_librdkafka_destroy_cond(as_pthread(c)); }

// TSan's interceptors, exported by libtsan under these names.
extern "C" int __interceptor_pthread_rwlock_init(pthread_rwlock_t*, const pthread_rwlockattr_t*);
extern "C" int __interceptor_pthread_rwlock_destroy(pthread_rwlock_t*);
extern "C" int __interceptor_pthread_rwlock_rdlock(pthread_rwlock_t*);
extern "C" int __interceptor_pthread_rwlock_wrlock(pthread_rwlock_t*);
extern "C" int __interceptor_pthread_rwlock_unlock(pthread_rwlock_t*);

extern "C" int pthread_rwlock_init(pthread_rwlock_t* __restrict l, const pthread_rwlockattr_t* __restrict attr) noexcept {
  return __interceptor_pthread_rwlock_init(l, attr);
}
namespace {
int prosody_tsan_librdkafka_destroy_rwlock(pthread_rwlock_t* l) { return __interceptor_pthread_rwlock_destroy(l); }
}  // namespace
extern "C" int pthread_rwlock_destroy(pthread_rwlock_t* l) noexcept {
  if (from_librdkafka(__builtin_return_address(0))) return prosody_tsan_librdkafka_destroy_rwlock(l);
  return __interceptor_pthread_rwlock_destroy(l);
}
extern "C" int pthread_rwlock_rdlock(pthread_rwlock_t* l) noexcept { return __interceptor_pthread_rwlock_rdlock(l); }
extern "C" int pthread_rwlock_wrlock(pthread_rwlock_t* l) noexcept { return __interceptor_pthread_rwlock_wrlock(l); }
extern "C" int pthread_rwlock_unlock(pthread_rwlock_t* l) noexcept { return __interceptor_pthread_rwlock_unlock(l); }

extern "C" void call_once(once_flag* flag, void (*function)(void)) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), function);
}
