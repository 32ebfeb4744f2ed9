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
      fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(errno)));
  thread_ = std::thread([this] { run(); });
}

JournalThread::~JournalThread() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
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

std::optional<JournalThread::Done> JournalThread::done() {
  std::lock_guard lock(mutex_);
  clear_fd();
  if (error_) throw JournalError(*error_);
  return std::exchange(done_, std::nullopt);
}

JournalThread::Done JournalThread::wait() {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] { return done_ || error_; });
  clear_fd();
  if (error_) throw JournalError(*error_);
  return *std::exchange(done_, std::nullopt);
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
  while (true) {
    wake_.wait_for(lock, keep_every_, [&] { return stop_ || seq_.has_value(); });
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
      error_ = std::move(failure);
      wake_.notify_all();
      notify_loop();
      // Nothing more is committed: wait for the owner to stop the thread.
      wake_.wait(lock, [&] { return stop_; });
      return;
    }
    if (batch) {
      done_ = Done{*seq_, bytes};
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

}  // namespace muster::broker::journal
