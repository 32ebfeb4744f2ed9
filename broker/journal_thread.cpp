// journal_thread.cpp — see journal_thread.hpp.
#include "journal_thread.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace muster::broker::journal {

JournalThread::JournalThread(std::unique_ptr<Journal> journal, std::chrono::milliseconds keep_every)
    : journal_(std::move(journal)),
      description_(journal_->describe()),
      epoch_(journal_->epoch()),
      keep_every_(keep_every),
      fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      sync_(journal_->deferred_sync()) {
  if (fd_ < 0) throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(errno)));
  thread_ = std::thread([this] { run(); });
  if (sync_) sync_thread_ = std::thread([this] { run_sync(); });
}

JournalThread::~JournalThread() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (sync_thread_.joinable()) sync_thread_.join();  // after it synced what was written
  journal_.reset();  // after the thread: a PostgreSQL journal releases its lease here
  ::close(fd_);
}

void JournalThread::commit(std::uint64_t seq, TurnOps turns) {
  {
    std::lock_guard lock(mutex_);
    if (error_) throw JournalError(*error_);
    if (seq_ || done_) throw std::logic_error("JournalThread::commit: the previous batch is not done() yet");
    seq_ = seq;
    turns_ = std::move(turns);
  }
  wake_.notify_all();
}

void JournalThread::take_spares(TurnOps& into) {
  std::lock_guard lock(mutex_);
  spare_ops_ = 0;
  if (spares_.empty()) return;
  if (into.empty()) return into.swap(spares_);
  into.insert(into.end(), std::make_move_iterator(spares_.begin()), std::make_move_iterator(spares_.end()));
  spares_.clear();
}

JournalThread::Progress JournalThread::done() {
  std::lock_guard lock(mutex_);
  clear_fd();
  if (error_) throw JournalError(*error_);
  return Progress{std::exchange(done_, std::nullopt), synced_};
}

JournalThread::Progress JournalThread::wait(std::uint64_t seq) {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] { return synced_ >= seq || error_; });
  clear_fd();
  if (error_) throw JournalError(*error_);
  return Progress{std::exchange(done_, std::nullopt), synced_};
}

void JournalThread::notify_loop() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

void JournalThread::clear_fd() {
  std::uint64_t count = 0;
  [[maybe_unused]] auto n = ::read(fd_, &count, sizeof count);
}

void JournalThread::run() {
  std::unique_lock lock(mutex_);
  struct Stopped {  // however this returns, the sync thread learns it (under the lock)
    JournalThread& t;
    ~Stopped() {
      t.writer_stopped_ = true;
      t.sync_wake_.notify_all();
    }
  } stopped{*this};
  while (true) {
    wake_.wait_for(lock, keep_every_, [&] { return stop_ || seq_.has_value() || error_; });
    if (error_) {  // the sync failed: nothing more is written
      wake_.wait(lock, [&] { return stop_; });
      return;
    }
    const bool batch = seq_.has_value();
    if (!batch && stop_) return;
    TurnOps turns = std::move(turns_);
    turns_.clear();
    lock.unlock();
    std::optional<std::string> failure;
    std::uint64_t bytes = 0;
    try {
      // Renewals between batches, and before each: a lost lease stops the daemon before
      // anything of the batch is committed (begin_turn fences it too).
      journal_->keep(std::chrono::steady_clock::now());
      if (batch) {
        journal_->begin_turn();
        journal_->append_turns(turns);
        journal_->commit();
        bytes = journal_->payload_bytes();
      }
    } catch (const std::exception& e) {
      if (journal_->in_turn()) journal_->rollback();
      failure = e.what();
    }
    lock.lock();
    if (failure) {
      if (!error_) error_ = std::move(failure);
      wake_.notify_all();
      sync_wake_.notify_all();
      notify_loop();
      // Nothing more is committed: wait for the owner to stop the thread.
      wake_.wait(lock, [&] { return stop_; });
      return;
    }
    if (batch) {
      done_ = Done{*seq_, bytes};
      written_ = *seq_;
      if (sync_) sync_wake_.notify_all();  // the sync thread syncs it (with whatever else is written by then)
      else synced_ = written_;             // commit() made it durable
      seq_.reset();
      wake_.notify_all();
      notify_loop();
      // The batch's records go now, on this thread and outside the lock (the loop may take
      // the outcome meanwhile); their vectors are kept for the loop's next turns.
      lock.unlock();
      for (auto& ops : turns) ops.clear();
      lock.lock();
      for (auto& ops : turns)
        if (spare_ops_ + ops.capacity() <= kSpareOps) {
          spare_ops_ += ops.capacity();
          spares_.push_back(std::move(ops));
        }
    }
  }
}

void JournalThread::run_sync() {
  std::unique_lock lock(mutex_);
  while (true) {
    sync_wake_.wait(lock, [&] { return error_ || written_ > synced_ || writer_stopped_; });
    if (error_ || written_ <= synced_) return;  // a failure, or the writer stopped and all is synced
    // Every batch written so far: their commit() returned before this sync begins.
    const std::uint64_t target = written_;
    lock.unlock();
    std::optional<std::string> failure;
    try {
      sync_->sync();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    lock.lock();
    if (failure) {
      if (!error_) error_ = std::move(failure);
      wake_.notify_all();  // the writer stops writing, the loop's wait() throws
      notify_loop();
      return;
    }
    synced_ = target;
    wake_.notify_all();
    notify_loop();
  }
}

}  // namespace muster::broker::journal
