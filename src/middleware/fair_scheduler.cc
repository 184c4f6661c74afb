#include "middleware/fair_scheduler.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <iterator>
#include <limits>

#include "util/futex.h"

namespace prosody::middleware {

namespace {

double seconds_between(Clock::steady_time from, Clock::steady_time to) {
  return std::chrono::duration<double>(to - from).count();
}

// 2^(-(to - from) / half-life): what is left at `to` of one second of VT
// recorded at `from` (above 1 when `to` is earlier).
double decay_factor(Clock::steady_time from, Clock::steady_time to) {
  return std::exp2(-seconds_between(from, to) / static_cast<double>(FairScheduler::kHalfLife.count()));
}

}  // namespace

std::string_view to_string(DemandClass c) noexcept {
  return c == DemandClass::normal ? "normal" : "failure";
}

SchedulerOptions SchedulerOptions::from_config(const Config& config) {
  SchedulerOptions o;
  o.max_concurrency = config.max_concurrency();
  o.failure_weight = config.scheduler_failure_weight();
  o.max_wait = config.scheduler_max_wait();
  o.wait_weight = config.scheduler_wait_weight();
  o.cache_size = static_cast<std::size_t>(std::max(config.scheduler_cache_size(), 1));
  return o;
}

// One request's queue entry, shared by the queue, its Ticket and the thread
// that grants it. Guarded by the scheduler's mutex, except that the waiting
// thread reads `state` (and then granted_at) without it: the granting thread
// writes both under the mutex, publishes `state` with a release store and
// then bumps `wakeups`, the word the waiter sleeps on. The owner (the
// acquiring thread, or the Ticket's holder) alone moves granted -> taken.
struct FairScheduler::Waiter {
  enum class State { waiting, granted, taken, abandoned };

  ScheduleRequest request;  // enqueued_at always set
  std::uint64_t seq = 0;
  // The key's VT at enqueue times 2^((its timestamp - decay_base_) / half-life):
  // multiplied by 2^(-(now - decay_base_) / half-life) it is the VT decayed
  // to now, the same factor for every waiter.
  double vt_scaled = 0;
  std::atomic<State> state{State::waiting};
  std::atomic<std::uint32_t> wakeups{0};  // bumped by a grant or a stop request
  time_point granted_at{};
  std::function<void()> on_granted;
  WaitList::iterator ready_pos;  // valid while waiting
  VtIndex::iterator vt_pos;      // valid while waiting

  void wake() {
    wakeups.fetch_add(1, std::memory_order_release);
    util::futex_wake_one(wakeups);
  }
};

bool FairScheduler::ByVirtualTime::operator()(VtPosition a, VtPosition b) const noexcept {
  if (a.vt_scaled != b.vt_scaled) return a.vt_scaled < b.vt_scaled;
  return a.seq < b.seq;
}

FairScheduler::VtPosition FairScheduler::ByVirtualTime::position(const Waiter* w) noexcept {
  return {w->vt_scaled, w->seq};
}

void FairScheduler::ClassQueue::insert(std::shared_ptr<Waiter> w) {
  // Ready times nearly always arrive in order: the place is found from the
  // back in a step or two.
  auto pos = by_ready_time.end();
  while (pos != by_ready_time.begin()) {
    const auto prev = std::prev(pos);
    if (*(*prev)->request.enqueued_at <= *w->request.enqueued_at) break;
    pos = prev;
  }
  Waiter* raw = w.get();
  raw->vt_pos = by_vt.insert(raw).first;
  raw->ready_pos = by_ready_time.insert(pos, std::move(w));
}

std::shared_ptr<FairScheduler::Waiter> FairScheduler::ClassQueue::erase(Waiter& w) {
  by_vt.erase(w.vt_pos);
  std::shared_ptr<Waiter> owned = std::move(*w.ready_pos);
  by_ready_time.erase(w.ready_pos);
  return owned;
}

FairScheduler::ClassQueue& FairScheduler::queue_of(const Waiter& w) {
  return w.request.demand == DemandClass::normal ? waiting_normal_ : waiting_failure_;
}

double FairScheduler::Decayed::at_time(time_point now) const noexcept {
  if (value == 0) return 0;
  const double dt = seconds_between(at, now);
  if (dt <= 0) return value;
  return value * decay_factor(at, now);
}

void FairScheduler::Decayed::add(double seconds, time_point now) noexcept {
  value = at_time(now) + seconds;
  at = std::max(at, now);
}

FairScheduler::FairScheduler(SchedulerOptions options, std::shared_ptr<const Clock> clock)
    : options_([&] {
        options.max_concurrency = std::max(options.max_concurrency, 1);
        options.failure_weight = std::clamp(options.failure_weight, 0.0, 1.0);
        return options;
      }()),
      clock_(std::move(clock)),
      vt_(options_.cache_size) {}

FairScheduler::~FairScheduler() {
  std::lock_guard lock(mutex_);
  // Permits and Tickets hold a raw pointer back to us.
  assert(in_use_.load() == 0 && waiting_normal_.empty() && waiting_failure_.empty());
}

bool FairScheduler::try_take_free_permit() noexcept { return waiting_.load() == 0 && take_free_permit(); }

bool FairScheduler::take_free_permit() noexcept {
  int held = in_use_.load();
  while (held < options_.max_concurrency) {
    if (in_use_.compare_exchange_weak(held, held + 1)) return true;
  }
  return false;
}

std::shared_ptr<FairScheduler::Waiter> FairScheduler::make_waiter_locked(ScheduleRequest&& request,
                                                                         std::function<void()>&& on_granted,
                                                                         time_point now) {
  auto w = std::make_shared<Waiter>();
  if (!request.enqueued_at) request.enqueued_at = now;
  // With nobody waiting the base can move freely; keeping it recent keeps
  // the scale factors near 1.
  if (waiting_normal_.empty() && waiting_failure_.empty()) decay_base_ = now;
  if (const Decayed* vt = vt_.peek(request.key.digest); vt != nullptr && vt->value != 0) {
    w->vt_scaled = vt->value * decay_factor(vt->at, decay_base_);
  }
  w->request = std::move(request);
  w->seq = next_seq_++;
  w->on_granted = std::move(on_granted);
  queue_of(*w).insert(w);
  waiting_.fetch_add(1);
  return w;
}

Result<FairScheduler::Permit> FairScheduler::acquire(ScheduleRequest request, std::stop_token stop) {
  // No lock while permits are free and nobody waits (the common case when
  // handlers keep up); the grant time is taken outside the lock either way.
  if (try_take_free_permit()) return Permit(this, request, clock_->now(), true);
  std::vector<std::shared_ptr<Waiter>> granted;
  std::shared_ptr<Waiter> w;
  {
    std::lock_guard lock(mutex_);
    const time_point now = clock_->now();
    // A permit freed since the check above goes to the queue's best
    // request, which may be this one (dispatch below), never past it.
    if (waiting_normal_.empty() && waiting_failure_.empty() && take_free_permit()) {
      return Permit(this, request, now, true);
    }
    w = make_waiter_locked(std::move(request), {}, now);
    dispatch_locked(now, granted);
  }
  wake(granted);
  return wait_for(w, std::move(stop));
}

std::optional<FairScheduler::Permit> FairScheduler::try_acquire(ScheduleRequest request) {
  if (!try_take_free_permit()) return std::nullopt;
  return Permit(this, request, clock_->now(), true);
}

FairScheduler::Ticket FairScheduler::enqueue(ScheduleRequest request, std::function<void()> on_granted) {
  std::vector<std::shared_ptr<Waiter>> granted;
  std::shared_ptr<Waiter> w;
  {
    std::lock_guard lock(mutex_);
    const time_point now = clock_->now();
    w = make_waiter_locked(std::move(request), std::move(on_granted), now);
    dispatch_locked(now, granted);
  }
  wake(granted);
  return Ticket(this, std::move(w));
}

Result<FairScheduler::Permit> FairScheduler::wait_for(const std::shared_ptr<Waiter>& w, std::stop_token stop) {
  using State = Waiter::State;
  {
    // The common way out, a grant, takes no lock: the granter published the
    // state (release) before bumping `wakeups`, and `wakeups` is read before
    // the state, so a grant after the check changes the word waited on.
    std::stop_callback on_stop(stop, [&w] { w->wake(); });
    for (;;) {
      const std::uint32_t seen = w->wakeups.load(std::memory_order_acquire);
      if (w->state.load(std::memory_order_acquire) != State::waiting || stop.stop_requested()) break;
      util::futex_wait(w->wakeups, seen);
    }
  }
  if (w->state.load(std::memory_order_acquire) == State::granted) {
    w->state.store(State::taken, std::memory_order_relaxed);
    return Permit(this, w->request, w->granted_at, false);
  }
  std::lock_guard lock(mutex_);
  switch (w->state.load(std::memory_order_relaxed)) {
    case State::granted:  // a grant that raced the stop request wins
      w->state.store(State::taken, std::memory_order_relaxed);
      return Permit(this, w->request, w->granted_at, false);
    case State::waiting:
      queue_of(*w).erase(*w);
      waiting_.fetch_sub(1);
      w->state.store(State::abandoned, std::memory_order_relaxed);
      return Error::transient("cancelled while waiting for a scheduler permit", ErrorCode::cancelled);
    case State::taken:
    case State::abandoned:
      break;
  }
  return Error(ErrorClass::transient, ErrorCode::invalid_state, "scheduler ticket already used");
}

std::optional<FairScheduler::Permit> FairScheduler::take(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mutex_);
  if (w->state.load(std::memory_order_relaxed) != Waiter::State::granted) return std::nullopt;
  w->state.store(Waiter::State::taken, std::memory_order_relaxed);
  return Permit(this, w->request, w->granted_at, false);
}

bool FairScheduler::is_granted(const std::shared_ptr<Waiter>& w) const {
  std::lock_guard lock(mutex_);
  return w->state.load(std::memory_order_relaxed) == Waiter::State::granted;
}

void FairScheduler::cancel(const std::shared_ptr<Waiter>& w) {
  std::vector<std::shared_ptr<Waiter>> granted;
  {
    std::lock_guard lock(mutex_);
    switch (w->state.load(std::memory_order_relaxed)) {
      case Waiter::State::waiting:
        queue_of(*w).erase(*w);
        waiting_.fetch_sub(1);
        w->state.store(Waiter::State::abandoned, std::memory_order_relaxed);
        return;
      case Waiter::State::granted:
        // Granted but never taken: the slot goes to the next waiter.
        w->state.store(Waiter::State::abandoned, std::memory_order_relaxed);
        in_use_.fetch_sub(1);
        dispatch_locked(clock_->now(), granted);
        break;
      case Waiter::State::taken:
      case Waiter::State::abandoned:
        return;
    }
  }
  wake(granted);
}

void FairScheduler::release(ScheduledKey key, DemandClass demand, time_point granted_at,
                            std::optional<time_point> ended_at, bool charge) {
  std::vector<std::shared_ptr<Waiter>> granted;
  const time_point now = ended_at ? *ended_at : clock_->now();
  {
    std::lock_guard lock(mutex_);
    if (charge) {
      const double ran = std::max(0.0, seconds_between(granted_at, now));
      vt_.get_or_create(key.digest).add(ran, now);
      (demand == DemandClass::normal ? success_time_ : failure_time_).add(ran, now);
    }
    [[maybe_unused]] const int held = in_use_.fetch_sub(1);
    assert(held > 0);
    if (waiting_.load() != 0) dispatch_locked(now, granted);
  }
  wake(granted);
}

void FairScheduler::dispatch_locked(time_point now, std::vector<std::shared_ptr<Waiter>>& granted) {
  while (!(waiting_normal_.empty() && waiting_failure_.empty()) && take_free_permit()) {
    std::shared_ptr<Waiter> w = pick_locked(now);
    w->granted_at = now;
    w->state.store(Waiter::State::granted, std::memory_order_release);
    granted.push_back(std::move(w));
  }
}

void FairScheduler::rebase_waiters_locked(time_point now) {
  const double factor = decay_factor(decay_base_, now);
  for (ClassQueue* queue : {&waiting_normal_, &waiting_failure_}) {
    // Scaling every key alike keeps their order, but rounding may turn two
    // neighbours equal, which the index would then order by arrival: rebuilt.
    queue->by_vt.clear();
    for (auto& w : queue->by_ready_time) {
      w->vt_scaled *= factor;
      w->vt_pos = queue->by_vt.insert(w.get()).first;
    }
  }
  decay_base_ = now;
}

FairScheduler::Waiter* FairScheduler::best_in_locked(ClassQueue& queue, time_point now) {
  // Under constant contention the base is never reset by an empty queue;
  // an hour is 30 half-lives, far from overflowing a double.
  if (now - decay_base_ > std::chrono::hours(1)) rebase_waiters_locked(now);
  const double decay = decay_factor(decay_base_, now);
  const double max_wait = std::chrono::duration<double>(options_.max_wait).count();
  const auto wait_term = [&](const Waiter& w) {
    const double waited = std::max(0.0, seconds_between(*w.request.enqueued_at, now));
    const double boost = max_wait > 0 ? std::min(waited / max_wait, 1.0) : 1.0;
    return options_.wait_weight * boost * boost;
  };
  // No waiter's wait term exceeds the oldest one's, and VTs are never
  // negative, so a waiter's priority is at least vt - largest_term, a bound
  // that only grows along the VT index. Once it is above the best priority
  // found nobody further on can win. Where it equals the best, a waiter can
  // at most tie, and a tie only wins with an earlier arrival: the rest of a
  // run of equal VTs arrived later still (the index orders a run by
  // arrival), so it is stepped over at once - with fresh keys everybody has
  // VT 0, and the walk is one step. The result is the full scan's, ties
  // included (lowest priority, then earliest arrival). A negative wait
  // weight (rejected by Config::validate) would break the bound: then every
  // waiter is looked at.
  const double largest_term = wait_term(*queue.by_ready_time.front());
  const bool bounded = options_.wait_weight >= 0;
  Waiter* best = nullptr;
  double best_priority = std::numeric_limits<double>::infinity();
  for (auto it = queue.by_vt.begin(); it != queue.by_vt.end();) {
    Waiter* w = *it;
    const double vt = w->vt_scaled * decay;
    if (bounded && best != nullptr) {
      const double lower = vt - largest_term;
      if (lower > best_priority) break;
      if (lower == best_priority && w->seq > best->seq) {
        it = queue.by_vt.upper_bound(VtPosition{w->vt_scaled, std::numeric_limits<std::uint64_t>::max()});
        continue;
      }
    }
    const double priority = vt - wait_term(*w);
    if (best == nullptr || priority < best_priority || (priority == best_priority && w->seq < best->seq)) {
      best = w;
      best_priority = priority;
    }
    ++it;
  }
  return best;
}

std::shared_ptr<FairScheduler::Waiter> FairScheduler::pick_locked(time_point now) {
  ClassQueue* queue = nullptr;
  if (waiting_normal_.empty() && waiting_failure_.empty()) return nullptr;
  if (waiting_failure_.empty()) {
    queue = &waiting_normal_;
  } else if (waiting_normal_.empty()) {
    queue = &waiting_failure_;
  } else {
    constexpr double inf = std::numeric_limits<double>::infinity();
    const double w = options_.failure_weight;
    const double normal_score = w >= 1.0 ? inf : success_time_.at_time(now) / (1.0 - w);
    const double failure_score = w <= 0.0 ? inf : failure_time_.at_time(now) / w;
    queue = failure_score < normal_score ? &waiting_failure_ : &waiting_normal_;
  }
  std::shared_ptr<Waiter> w = queue->erase(*best_in_locked(*queue, now));
  waiting_.fetch_sub(1);
  return w;
}

void FairScheduler::wake(std::vector<std::shared_ptr<Waiter>>& granted) {
  for (auto& w : granted) {
    // After unlocking: the woken thread does not need the mutex to leave.
    w->wake();
    if (w->on_granted) {
      auto callback = std::move(w->on_granted);
      callback();
    }
  }
}

FairScheduler::Snapshot FairScheduler::snapshot() const {
  std::lock_guard lock(mutex_);
  const time_point now = clock_->now();
  Snapshot s;
  s.max_concurrency = options_.max_concurrency;
  s.in_use = in_use_.load();
  s.waiting_normal = waiting_normal_.by_ready_time.size();
  s.waiting_failure = waiting_failure_.by_ready_time.size();
  s.success_seconds = success_time_.at_time(now);
  s.failure_seconds = failure_time_.at_time(now);
  s.tracked_keys = vt_.size();
  return s;
}

double FairScheduler::virtual_time_seconds(const TopicPartitionKey& key) const {
  std::lock_guard lock(mutex_);
  const Decayed* vt = vt_.peek(ScheduledKey(key).digest);
  return vt == nullptr ? 0.0 : vt->at_time(clock_->now());
}

// ---- Permit -----------------------------------------------------------------

FairScheduler::Permit::Permit(Permit&& other) noexcept
    : scheduler_(std::exchange(other.scheduler_, nullptr)),
      key_(other.key_),
      demand_(other.demand_),
      granted_at_(other.granted_at_),
      immediate_(other.immediate_) {}

FairScheduler::Permit& FairScheduler::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    release();
    scheduler_ = std::exchange(other.scheduler_, nullptr);
    key_ = other.key_;
    demand_ = other.demand_;
    granted_at_ = other.granted_at_;
    immediate_ = other.immediate_;
  }
  return *this;
}

void FairScheduler::Permit::release() {
  if (auto* s = std::exchange(scheduler_, nullptr)) s->release(key_, demand_, granted_at_, std::nullopt, true);
}

void FairScheduler::Permit::release_at(time_point now) {
  if (auto* s = std::exchange(scheduler_, nullptr)) s->release(key_, demand_, granted_at_, now, true);
}

void FairScheduler::Permit::release_uncharged() {
  if (auto* s = std::exchange(scheduler_, nullptr)) s->release(key_, demand_, granted_at_, std::nullopt, false);
}

// ---- Ticket -----------------------------------------------------------------

FairScheduler::Ticket& FairScheduler::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    cancel();
    scheduler_ = other.scheduler_;
    waiter_ = std::move(other.waiter_);
  }
  return *this;
}

bool FairScheduler::Ticket::granted() const { return waiter_ && scheduler_->is_granted(waiter_); }

std::optional<FairScheduler::Permit> FairScheduler::Ticket::take() {
  if (!waiter_) return std::nullopt;
  auto permit = scheduler_->take(waiter_);
  if (permit) waiter_.reset();
  return permit;
}

Result<FairScheduler::Permit> FairScheduler::Ticket::wait(std::stop_token stop) {
  if (!waiter_) return Error(ErrorClass::transient, ErrorCode::invalid_state, "empty scheduler ticket");
  auto result = scheduler_->wait_for(waiter_, std::move(stop));
  waiter_.reset();
  return result;
}

void FairScheduler::Ticket::cancel() {
  if (auto w = std::move(waiter_)) scheduler_->cancel(w);
}

}  // namespace prosody::middleware
