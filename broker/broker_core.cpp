// broker_core.cpp — the broker's rules. See broker_core.hpp for the contract.
#include "broker_core.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <string_view>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/messages.hpp"
#include "muster/utf8.hpp"
#include "input_check.hpp"
#include "journal_recovery.hpp"
#include "spec_difference.hpp"

namespace muster::broker {

namespace {
// Pings remembered (broadcast, and confirming ones per worker): a Pong must name one of them.
// 64 broadcast pings are 64 s at the default interval, far longer than any honest answer.
constexpr std::size_t kKeptPings = 64;

template <class Seqs>
void remember_ping(Seqs& seqs, std::uint64_t seq) {
  seqs.push_back(seq);
  if (seqs.size() > kKeptPings) seqs.erase(seqs.begin());
}

std::uint64_t us_between(TimePoint from, TimePoint to) {
  if (to <= from) return 0;
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(to - from).count());
}

std::uint64_t ms_between(TimePoint from, TimePoint to) {
  if (to <= from) return 0;
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<Millis>(to - from).count());
}

// One owner for both payloads of a request (the daemon gives them the same one).
std::shared_ptr<const void> owner_of_both(const Payload& a, const Payload& b) {
  if (b.bytes.empty() || b.owner == a.owner) return a.bytes.empty() ? b.owner : a.owner;
  if (a.bytes.empty()) return b.owner;
  return std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<const void>>>(
      a.owner, b.owner);
}
}  // namespace

std::size_t BrokerCore::PeerHash::operator()(const Peer& p) const {
  return hash_parts(p.routing_id, p.identity, p.address, p.via, p.delimiter);
}
bool BrokerCore::PeerEq::operator()(const Peer& a, const Peer& b) const {
  return a.routing_id == b.routing_id && a.delimiter == b.delimiter && a.identity == b.identity &&
         a.address == b.address && a.via == b.via;
}
std::size_t BrokerCore::CallerHash::operator()(const Caller& c) const {
  return hash_parts(c.identity, c.name, c.workspace, c.role);
}

BrokerCore::BrokerCore(CoreConfig config, TimePoint now)
    : config_(std::move(config)),
      started_(now),
      next_ping_at_(now),
      watchers_(config_.watch_backlog, config_.max_watches_per_connection),
      resumable_(config_.resume_keep, config_.resume_keep_bytes) {
  next_request_id_ = std::max<std::uint64_t>(1, config_.first_request_id);
  next_journal_expire_ = now + config_.journal_expire_interval;
}

// ---- the journal of durable calls ----------------------------------------------------------

journal::WallTime BrokerCore::wall(TimePoint now) const {
  return config_.wall_start + std::chrono::duration_cast<Millis>(now - started_);
}

void BrokerCore::journal(journal::Record record) { journal_ops_.emplace_back(std::move(record)); }

void BrokerCore::on_journal_epoch(std::uint64_t epoch) {
  next_request_id_ = std::max(next_request_id_, epoch << 40);
}

void BrokerCore::on_journal_state(std::uint64_t payload_bytes, journal::JobId next_job_id) {
  journal_bytes_ = payload_bytes;
  next_job_id_ = std::max(next_job_id_, next_job_id);
}

// ---- output helpers ---------------------------------------------------------------------

void BrokerCore::reply_worker(const Peer& peer,
                              std::variant<AttachedReply, AckReply, RejectedReply> body) {
  actions_.push_back(ReplyToWorker{peer, std::move(body)});
}

void BrokerCore::reply_client(
    const Request& r, ClientReplyBody body) {
  if (r.client->routing_id.empty()) return;  // restored: its caller has not resumed (restore)
  if (auto* result = std::get_if<ResultBody>(&body)) result->payload_frames = r.payload_frames;
  // Built in place: a temporary would be moved twice more (into the variant, into the vector).
  auto& a = std::get<ReplyToClient>(actions_.emplace_back(std::in_place_type<ReplyToClient>));
  a.peer = r.client;  // shared, not copied (SharedPeer)
  a.request_id = r.client_request_id;
  a.body = std::move(body);
}

std::string BrokerCore::client_lane(const Peer& peer) {
  std::string lane = peer.routing_id;
  lane.push_back(static_cast<char>(peer.via));
  return lane;
}

std::string BrokerCore::lane_of(const Request& r) {
  static const Peer kRestored{};
  return queue_lane(r.restored_lane ? kRestored : *r.client, *r.caller);
}

std::string BrokerCore::queue_lane(const Peer& peer, const Caller& caller) {
  std::string lane = client_lane(peer);
  lane.push_back('\0');
  lane += caller.identity;
  return lane;
}

std::string BrokerCore::client_key(const Peer& peer, std::uint64_t id) const {
  return client_key(client_lane(peer), id);
}

std::string BrokerCore::client_key(std::string_view lane, std::uint64_t id) {
  std::string key;
  key.reserve(lane.size() + sizeof id);
  key.append(lane);
  key.append(reinterpret_cast<const char*>(&id), sizeof id);
  return key;
}

std::int64_t BrokerCore::second_of(TimePoint now) const {
  return std::chrono::duration_cast<std::chrono::seconds>(now - started_).count();
}

void BrokerCore::count_terminal(TimePoint now, ErrorCode code, WorkspaceStats& workspace,
                                NodeStats* node, std::string_view node_name,
                                std::string_view message) {
  const auto second = second_of(now);
  terminal_.count_terminal(second, code);
  workspace.counts.count_terminal(second, code);
  if (node) node->outcomes.count_terminal(second, code);
  if (code != ErrorCode::None) workspace.recent_failures.push(node_name, code, message, now);
}

void BrokerCore::finish(TimePoint now, Request& r, std::variant<ResultBody, FailureBody> terminal) {
  r.held_outputs.reset();  // a held Result (§7.9 R8) is never sent after the terminal reply
  r.held_streams.clear();
  if (r.job_id) {  // journaled before its terminal reply is sent (the loop commits first)
    journal::Outcome outcome;
    if (auto* res = std::get_if<ResultBody>(&terminal)) {
      outcome.outputs = res->outputs;
      res->job_id = r.job_id;
    } else {
      auto& failure = std::get<FailureBody>(terminal);
      outcome.code = failure.code;
      outcome.message = failure.message;
      failure.job_id = r.job_id;
    }
    journal_bytes_ -= std::min<std::uint64_t>(journal_bytes_, r.inputs.size() + r.parameters.size());
    journal_bytes_ += outcome.outputs.bytes.size() + outcome.message.size();
    auto at = wall(now);
    keep_outcome(r, outcome, at);  // for its caller, until JobAck or result_ttl
    journal(journal::Finished{r.job_id, std::move(outcome), at, at + config_.result_ttl});
  }
  if (r.call_token) keep_for_resume(now, r, terminal);  // for a CallResume (PROTOCOL.md §8.3 C5)
  if (auto* res = std::get_if<ResultBody>(&terminal)) {
    count_terminal(now, ErrorCode::None, *r.stats->workspace, r.stats, r.node->second, {});
    reply_client(r, std::move(*res));
  } else {
    auto& failure = std::get<FailureBody>(terminal);
    count_terminal(now, failure.code, *r.stats->workspace, r.stats, r.node->second, failure.message);
    reply_client(r, std::move(failure));
  }
  note_call(r, CallPhase::Finished, std::holds_alternative<ResultBody>(terminal)
                                        ? ErrorCode::None
                                        : std::get<FailureBody>(terminal).code);
  const std::string lane = client_lane(*r.client);
  by_client_.erase(client_key(lane, r.client_request_id));
  count_open(r, -1, lane);
  r.answered = true;
  deadlines_.drop_stale_front([this](std::uint64_t id) { return deadline_counts(id); });
}

void BrokerCore::leave_to_next_instance(std::unordered_map<std::uint64_t, Request>::iterator it) {
  Request& r = it->second;
  spdlog::info("durable call left in the journal for the next instance job_id={} node={} state={}",
               r.job_id, r.node->second, r.state == RequestState::Queued ? "queued" : "running");
  by_client_.erase(client_key(*r.client, r.client_request_id));
  count_open(r, -1);
  jobs_.closed(r.job_id);
  erase_request(it);
}

bool BrokerCore::deadline_counts(std::uint64_t id) const {
  auto it = requests_.find(id);
  return it != requests_.end() && !it->second.answered;
}

void BrokerCore::immediate_failure(TimePoint now, const Peer& peer, const Caller& who,
                                   std::uint64_t client_request_id, std::string_view node,
                                   ErrorCode code, std::string message) {
  if (!valid_node_name(node)) node = {};
  NodeStats* stats = node.empty() ? nullptr : stats_.find_node(NodeKey{who.workspace, std::string(node)});
  WorkspaceStats& workspace = stats_.workspace(who.workspace);
  ++workspace.counts.submitted;  // an accepted Submit is counted through its node's entry
  count_terminal(now, code, workspace, stats, node, message);
  actions_.push_back(
      ReplyToClient{peer, client_request_id, FailureBody{code, std::move(message)}, true});
}

void BrokerCore::count_open(const Request& r, int delta) { count_open(r, delta, client_lane(*r.client)); }

void BrokerCore::count_open(const Request& r, int delta, const std::string& key) {
  count_open(r, delta, key, outstanding_.find(key));
}

void BrokerCore::count_open(const Request& r, int delta, const std::string& key, OutstandingMap::iterator at) {
  if (at == outstanding_.end()) at = outstanding_.try_emplace(key).first;
  auto bytes = r.inputs.size() + r.parameters.size();
  auto& o = at->second;
  if (delta > 0) {
    ++o.open;
    o.open_bytes += bytes;
  } else {
    --o.open;
    o.open_bytes -= bytes;
  }
  if (o.open == 0 && o.unread == 0) outstanding_.erase(at);
}

void BrokerCore::on_client_backlog(const std::string& connection, std::size_t replies,
                                   std::uint64_t bytes) {
  auto it = outstanding_.find(connection);
  if (it == outstanding_.end()) {
    if (replies == 0) return watchers_.backlog(connection, 0);
    it = outstanding_.emplace(connection, Outstanding{}).first;
  }
  it->second.unread = replies;
  it->second.unread_bytes = bytes;
  watchers_.backlog(connection, replies);
  if (it->second.open == 0 && it->second.unread == 0) outstanding_.erase(it);
}

// ---- worker lookup and request placement --------------------------------------------------

WorkerEntry* BrokerCore::worker_for(const Peer& peer, const Caller& who,
                                    const std::string& worker_id) {
  WorkerEntry* w = registry_.find(worker_id);
  if (!w) {
    reply_worker(peer, RejectedReply{ErrorCode::InvalidRequest,
                                     fmt::format("worker '{}' is not attached; attach again",
                                                 worker_id),
                                     true});
    return nullptr;
  }
  if (w->owner.identity != who.identity) {
    spdlog::warn("identity {} sent a message as worker {} (attached by {}): rejected",
                 who.identity, worker_id, w->owner.identity);
    reply_worker(peer, RejectedReply{ErrorCode::PermissionDenied,
                                     fmt::format("worker '{}' belongs to another identity",
                                                 worker_id),
                                     false});
    return nullptr;
  }
  // Over ipc every peer is the same identity ("local"): only the connection tells workers apart.
  // The same identity on another connection is, most often, the worker itself after its
  // connection broke and libzmq connected again (a new routing id): `reattach` makes it attach
  // again, and its Attach with the same session moves it here with its requests (PROTOCOL.md
  // §7.3). Another process of the same identity gains nothing it could not do before: any Attach
  // of that identity may replace the worker id, but only the worker's own session keeps its calls.
  if (w->connection.same_connection(peer)) return w;
  if (w->replaced_connection && w->replaced_connection->same_connection(peer)) {
    spdlog::warn("the connection of a replaced worker {} sent a message as it: rejected (two processes "
                 "with the same worker id?)", worker_id);
    reply_worker(peer, RejectedReply{ErrorCode::PermissionDenied,
                                     fmt::format("worker '{}' was replaced by a newer Attach of the same "
                                                 "worker id (another process?)",
                                                 worker_id),
                                     false});
    return nullptr;
  }
  spdlog::info("a new connection of identity {} sent a message as worker {}: asked to attach again",
               who.identity, worker_id);
  reply_worker(peer, RejectedReply{ErrorCode::PermissionDenied,
                                   fmt::format("worker '{}' is attached on another connection; "
                                               "attach again from this one",
                                               worker_id),
                                   true});
  return nullptr;
}

void BrokerCore::abort_again_if_over(const WorkerEntry& w, const std::vector<std::uint64_t>& in_flight) {
  for (auto id : in_flight) {
    auto it = requests_.find(id);
    const bool orphaned_here =
        it != requests_.end() && it->second.state == RequestState::Orphaned && w.holding.contains(id);
    // Ids this instance gave out and no longer holds: over (an earlier instance's, below the
    // first, may be a call this one restores or adopts: not ours to stop).
    const bool over = it == requests_.end() && first_issued_id_ && id >= first_issued_id_ && id < next_request_id_;
    if (!orphaned_here && !over) continue;
    spdlog::debug("worker {} still runs request {}, which is over: Abort sent again", w.id, id);
    actions_.push_back(SendAbort{w.id, id, ErrorCode::Cancelled,
                                 "the call is already over (its Abort may have been lost on the way)"});
  }
}

void BrokerCore::send_to_worker(Request& r, WorkerEntry& w, TimePoint now) {
  r.state = RequestState::Dispatched;
  r.worker_id = w.id;
  ++r.attempts;
  r.dispatch_seq = next_ping_seq_;
  if (r.attempts == 1 || r.waiting_since > r.dispatched)  // not a re-send after a silent loss
    r.stats->queue_wait.record(us_between(r.waiting_since, now));
  r.dispatched = now;
  w.holding.insert(r.id);
  w.last_dispatch = now;
  note_call(r, CallPhase::Running);
  if (r.job_id) journal(journal::Dispatched{r.job_id, w.id, w.owner.identity, r.id, r.attempts});
  // Built in place (a temporary would be moved twice: into the variant, then into the vector).
  auto& a = std::get<SendWorkRequest>(actions_.emplace_back(std::in_place_type<SendWorkRequest>));
  a.worker_id = w.id;
  a.request_id = r.id;
  a.node = r.node->second;
  a.inputs = Payload{r.payload_owner, r.inputs};
  a.parameters = Payload{r.payload_owner, r.parameters};
  a.timeout_ms = std::max<std::uint64_t>(1, ms_between(now, r.deadline));
  a.attempt = r.attempts;
  a.caller.who = r.caller;
  a.caller.trace_id = r.trace_id;  // empty: the default (append_default_trace_id)
  a.payload_frames = w.payload_frames;
  a.stream_window_items = r.stream ? static_cast<std::uint32_t>(r.stream->window().items) : 0u;
  a.stream_window_bytes = r.stream ? r.stream->window().bytes : 0u;
  a.chunk_window_bytes = r.chunk_window;
}

void BrokerCore::dispatch_node(const NodeKey& key, TimePoint now) {
  NodeEntry* entry = registry_.node(key);
  if (!entry) return;
  while (!entry->queue.empty()) {
    WorkerEntry* w = registry_.pick(*entry);
    if (!w) break;
    auto id = *entry->queue.pop();
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    send_to_worker(it->second, *w, now);
  }
  registry_.drop_if_unused(key);
}

void BrokerCore::dispatch_worker_nodes(WorkerEntry& w, TimePoint now) {
  // Called on every answer (release): a node with nothing queued has nothing to dispatch, and
  // its entry stays (w, Ready, serves it), so it is skipped without building its key or looking
  // it up (w.indexed_in: the entries w is indexed in, in the order of w.nodes).
  std::vector<NodeKey> keys;
  for (std::size_t i = 0; i < w.indexed_in.size(); ++i)
    if (!w.indexed_in[i]->queue.empty()) keys.emplace_back(w.owner.workspace, w.nodes[i].name);
  for (auto& key : keys) dispatch_node(key, now);
}

void BrokerCore::release(WorkerEntry& w, std::uint64_t request_id, TimePoint now) {
  w.holding.erase(request_id);
  if (w.state == WorkerState::Draining) {
    if (w.holding.empty()) {
      spdlog::info("worker detached worker_id={}", w.id);
      registry_.remove(w.id);
    }
    return;
  }
  if (w.state == WorkerState::Ready) dispatch_worker_nodes(w, now);
}

void BrokerCore::remove_from_queue(Request& r) {
  NodeEntry* entry = registry_.node(*r.node);
  if (!entry) return;
  entry->queue.erase(lane_of(r), r.id);
  registry_.drop_if_unused(*r.node);
}

void BrokerCore::worker_gone(WorkerEntry& w, TimePoint now, const std::string& why) {
  spdlog::warn("worker is gone: {}; {} request(s) open on it worker_id={} hostname=\"{}\"", why,
               w.holding.size(), w.id, w.hostname);
  std::vector<std::uint64_t> held(w.holding.begin(), w.holding.end());
  std::sort(held.rbegin(), held.rend());  // push_front in reverse keeps the oldest first
  std::vector<NodeKey> affected;
  std::string worker_id = w.id;
  for (auto id : held) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    Request& r = it->second;
    if (r.state == RequestState::Orphaned) {
      erase_request(it);
      continue;
    }
    ++r.deaths;
    NodeKey node = *r.node;
    if (lose_request(id, worker_id, why, now)) affected.push_back(std::move(node));
  }
  registry_.remove(worker_id);
  for (auto& key : affected) dispatch_node(key, now);
  note_unserved(now);
}

bool BrokerCore::lose_request(std::uint64_t id, const std::string& worker_id,
                              const std::string& why, TimePoint now) {
  auto it = requests_.find(id);
  Request& r = it->second;
  r.resends = 0;
  if (chunks_forwarded(r)) {  // its chunks went to or came from that worker (PROTOCOL.md §7.9)
    finish(now, r, FailureBody{ErrorCode::WorkerLost,
                               fmt::format("worker '{}' was lost ({}) in the middle of the call's chunked "
                                           "streams; it was not retried", worker_id, why)});
    erase_request(it);
    return false;
  }
  if (items_delivered(r)) {  // a re-run would repeat items its caller has (PROTOCOL.md §7.8)
    finish(now, r, FailureBody{ErrorCode::WorkerLost,
                               fmt::format("worker '{}' was lost ({}) after {} item(s) of the stream "
                                           "were delivered; a re-run would repeat them, so it was not retried",
                                           worker_id, why, r.stream->forwarded_items())});
    erase_request(it);
    return false;
  }
  if (r.idempotent && r.attempts < config_.max_attempts && !shutting_down_) {
    if (r.stream) r.stream->restart();  // seq starts again at 0 on the next worker
    if (r.chunks) r.chunks->restart();
    r.held_outputs.reset();  // the dead worker's Result (§7.9 R8): the next worker answers for itself
    r.held_streams.clear();
    r.state = RequestState::Queued;
    r.worker_id.clear();
    r.waiting_since = now;
    registry_.node_for_queue(*r.node).queue.push_front(lane_of(r), id);
    note_call(r, CallPhase::Queued);
    if (r.job_id) journal(journal::Requeued{r.job_id, r.deaths});
    ++redispatched_;
    ++r.stats->workspace->counts.redispatched;
    spdlog::info("request re-queued after losing worker (attempt {} of {}) request_id={} "
                 "node={} worker_id={}", r.attempts, config_.max_attempts, id, r.node->second, worker_id);
    return true;
  }
  std::string msg =
      r.idempotent
          ? fmt::format("worker '{}' was lost ({}) after {} attempt(s) of the request",
                        worker_id, why, r.attempts)
          : fmt::format("worker '{}' was lost ({}) while running the request; node '{}' is "
                        "not idempotent, so it was not retried",
                        worker_id, why, r.node->second);
  finish(now, r, FailureBody{ErrorCode::WorkerLost, std::move(msg)});
  erase_request(it);
  return false;
}

void BrokerCore::note_unserved(TimePoint now) {
  for (auto& key : registry_.take_unserved()) {
    NodeEntry* entry = registry_.node(key);
    if (!entry || Registry::served(*entry) || entry->queue.empty()) continue;
    spdlog::info("the last worker of node '{}' left with {} request(s) queued: NO_WORKER in {} ms "
                 "unless a worker of the node attaches", key.second, entry->queue.size(),
                 config_.no_worker_grace.count());
    unserved_.try_emplace(key, now + config_.no_worker_grace);
  }
  if (config_.no_worker_grace.count() <= 0) fail_unserved(now);
}

void BrokerCore::fail_unserved(TimePoint now) {
  for (auto u = unserved_.begin(); u != unserved_.end();) {
    if (u->second > now) {
      ++u;
      continue;
    }
    NodeKey key = u->first;
    u = unserved_.erase(u);
    NodeEntry* entry = registry_.node(key);
    if (!entry || Registry::served(*entry)) continue;  // a worker of the node came back
    while (auto id = entry->queue.pop()) {
      auto it = requests_.find(*id);
      if (it == requests_.end()) continue;
      finish(now, it->second,
             FailureBody{ErrorCode::NoWorker,
                         fmt::format("no worker serves node '{}' any more: its last worker left "
                                     "and none attached within {} ms (--no-worker-grace-ms)",
                                     key.second, config_.no_worker_grace.count())});
      erase_request(it);
    }
    registry_.drop_if_unused(key);
  }
}

bool BrokerCore::ping_sent_to(const WorkerEntry& w, std::uint64_t seq) const {
  return std::binary_search(broadcast_seqs_.begin(), broadcast_seqs_.end(), seq) ||
         std::find(w.confirm_seqs.begin(), w.confirm_seqs.end(), seq) != w.confirm_seqs.end();
}

// ---- worker events ------------------------------------------------------------------------

namespace {
// The k a worker asking for idle pongs is granted: the daemon's, when it answers every k-th
// ping at all (k > 1); 1 (every ping) otherwise.
std::uint32_t granted_idle_pong_every(const CoreConfig& config, const AttachEvent& ev) {
  return ev.idle_pongs && config.idle_pong_every > 1 ? config.idle_pong_every : 1;
}
// Whether a worker asking for its messages on its connection gets them there: never for a REQ
// peer (the empty delimiter), which cannot receive a message it did not ask for (§7.10).
bool granted_direct(const Peer& peer, const AttachEvent& ev) { return ev.direct && !peer.delimiter; }
}  // namespace

void BrokerCore::on_attach(TimePoint now, const Peer& peer, const Caller& who, AttachEvent ev) {
  auto reject = [&](ErrorCode code, std::string msg) {
    spdlog::warn("attach of worker '{}' refused: {}", ev.worker_id, msg);
    reply_worker(peer, RejectedReply{code, std::move(msg), false});
  };
  if (shutting_down_) return reject(ErrorCode::ShuttingDown, "the daemon is shutting down");
  if (!valid_worker_id(ev.worker_id))
    return reject(ErrorCode::InvalidRequest,
                  fmt::format("invalid worker id '{}' (use 1-64 of A-Z a-z 0-9 _ . -)", ev.worker_id));
  if (ev.capacity == 0 || ev.capacity > 65536)
    return reject(ErrorCode::InvalidRequest, "capacity must be between 1 and 65536");
  if (ev.nodes.empty()) return reject(ErrorCode::InvalidRequest, "a worker must declare at least one node");
  // A set, not a pairwise scan: an Attach declaring 20,000 nodes cost musterd ~1 s of CPU
  // with the scan, stalling every other peer (docs/RELIABILITY.md, "big-attach").
  std::unordered_set<std::string_view> declared;
  declared.reserve(ev.nodes.size());
  std::uint64_t spec_bytes = 0;
  for (auto& spec : ev.nodes) {
    if (!valid_node_name(spec.name))
      return reject(ErrorCode::InvalidRequest,
                    fmt::format("invalid node name '{}' (use 1-128 of A-Z a-z 0-9 _ . : -)", spec.name));
    if (!declared.insert(spec.name).second)
      return reject(ErrorCode::InvalidRequest, fmt::format("node '{}' declared twice", spec.name));
    // Every client lists the specs as JSON: one that has no JSON form would break the listing
    // for the whole workspace (a non-finite float as a port default).
    try {
      spec_bytes += to_json(spec).dump().size();
    } catch (const std::invalid_argument& e) {
      return reject(ErrorCode::InvalidRequest, fmt::format("node '{}': {}", spec.name, e.what()));
    }
    if (config_.max_attach_spec_bytes && spec_bytes > config_.max_attach_spec_bytes)
      return reject(ErrorCode::InvalidRequest,
                    fmt::format("the node specs of an Attach may take at most {} bytes as JSON "
                                "(--max-attach-spec-bytes); the first {} of {} take {}",
                                config_.max_attach_spec_bytes, declared.size(), ev.nodes.size(),
                                spec_bytes));
  }
  if (!valid_utf8(ev.hostname) || !valid_utf8(ev.sdk))
    return reject(ErrorCode::InvalidRequest, "hostname and sdk must be valid UTF-8");

  WorkerEntry* w = registry_.find(ev.worker_id);
  // One node, one declaration: the inputs musterd checks (input_check.hpp) and the shape every
  // client lists must hold whichever worker takes a call. A worker declaring a served node
  // differently is refused, naming the node and the first difference (PROTOCOL.md §5.1).
  for (auto& spec : ev.nodes) {
    if (auto unsound = unsound_port(spec)) return reject(ErrorCode::InvalidRequest, *unsound);
    const NodeEntry* served = registry_.node(NodeKey{who.workspace, spec.name});
    if (!served) continue;
    auto other = std::find_if(served->workers.begin(), served->workers.end(),
                              [&](const WorkerEntry* x) { return x != w; });
    if (other == served->workers.end()) continue;  // only this worker serves it: it may change
    if (auto diff = spec_difference(served->spec, spec))
      return reject(ErrorCode::InvalidRequest,
                    fmt::format("node '{}' is already served by worker '{}' with a different "
                                "declaration: {} (declare it the same way, or give it another "
                                "name, e.g. with a version suffix)",
                                spec.name, (*other)->id, *diff));
  }
  if (w && w->owner.identity != who.identity)
    return reject(ErrorCode::PermissionDenied,
                  fmt::format("worker id '{}' is attached by another identity", ev.worker_id));
  if (!w && config_.max_workers_per_identity &&
      registry_.workers_of(who.identity) >= config_.max_workers_per_identity)
    return reject(ErrorCode::InvalidRequest,
                  fmt::format("identity '{}' has {} workers attached, the most one identity may "
                              "have (--max-workers-per-identity)",
                              who.name, registry_.workers_of(who.identity)));
  if (w && !ev.session.empty() && w->session == ev.session) {
    // The same process re-attaching (it reconnected): its requests stay with it.
    w->hostname = std::move(ev.hostname);
    w->sdk = std::move(ev.sdk);
    w->pid = ev.pid;
    w->payload_frames = ev.payload_frames;
    w->no_answer_acks = ev.no_answer_acks;
    w->idle_pong_every = granted_idle_pong_every(config_, ev);
    w->direct = granted_direct(peer, ev);
    w->connection = peer;  // a reconnected process: its messages now come from here (and, direct, go)
    registry_.update(*w, std::move(ev.nodes), ev.capacity);
    note_unserved(now);  // it may have stopped declaring a node others wait for
    w->resume_outputs_on_confirm = true;
    spdlog::info("worker re-attached (same session), {} request(s) kept worker_id={}", w->holding.size(), w->id);
  } else {
    std::optional<Peer> replaced;
    if (w) {
      if (!w->connection.same_connection(peer)) replaced = w->connection;
      worker_gone(*w, now, "replaced by a new session of the same worker id");
    }
    WorkerEntry entry;
    entry.replaced_connection = std::move(replaced);
    entry.id = ev.worker_id;
    entry.owner = who;
    entry.connection = peer;
    entry.hostname = std::move(ev.hostname);
    entry.sdk = std::move(ev.sdk);
    entry.session = std::move(ev.session);
    entry.pid = ev.pid;
    entry.capacity = ev.capacity;
    entry.nodes = std::move(ev.nodes);
    entry.payload_frames = ev.payload_frames;
    entry.no_answer_acks = ev.no_answer_acks;
    entry.idle_pong_every = granted_idle_pong_every(config_, ev);
    entry.direct = granted_direct(peer, ev);
    entry.attached_at = now;
    w = &registry_.add(std::move(entry));
    spdlog::info("worker attached worker_id={} hostname=\"{}\" sdk=\"{}\" capacity={} nodes={}", w->id,
                 w->hostname, w->sdk, w->capacity, w->nodes.size());
  }
  w->state = WorkerState::Confirming;
  w->last_heard = now;
  w->confirm_seqs.clear();
  reply_worker(peer, AttachedReply{w->id, w->no_answer_acks,
                                   w->idle_pong_every > 1 ? w->idle_pong_every : 0, w->direct});
  // Prove the PUB path reaches it before any work is sent (the slow-joiner trap).
  remember_ping(w->confirm_seqs, next_ping_seq_);
  actions_.push_back(SendPing{w->id, next_ping_seq_++});
  w->next_confirm_ping = now + config_.confirm_interval;
  next_confirm_at_ = std::min(next_confirm_at_, w->next_confirm_ping);
}

void BrokerCore::on_pong(TimePoint now, const Peer& peer, const Caller& who,
                         const std::string& worker_id, std::uint64_t seq,
                         const std::string& instance, const std::vector<std::uint64_t>& in_flight,
                         const std::vector<std::uint64_t>& answered) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  // Restored running calls this worker ran before the restart: adopted or lost now, before
  // `missing` is computed (an adopted call whose answer the worker keeps is missing).
  if (!recovering_.empty() && instance == config_.instance && ping_sent_to(*w, seq))
    settle_recovering(now, *w, in_flight, answered);
  AckReply ack{false, seq, {}};
  // Answers the worker sent before this Pong and kept, unacknowledged (no_answer_acks): on one
  // connection they came before the Pong, so any the daemon still waits for were lost on the
  // way. The Ack names them (the worker sends them again) and the worker forgets the others.
  // So every Ack names every answer this daemon still waits for from this worker — also the Ack
  // to a Pong it otherwise ignores (another instance's, a stale confirming ping's: a worker
  // that attached twice), and a restored call not adopted yet: an Ack that left one out would
  // make the worker forget an answer the daemon then adopts and waits for, and the call would
  // look lost and run again. Request ids never repeat across instances (§5), so an id of ours
  // in another instance's Pong is that call.
  for (auto id : answered) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    const bool dispatched_here = it->second.state == RequestState::Dispatched && w->holding.contains(id);
    auto rc = recovering_.find(id);
    const bool recovering_here = it->second.state == RequestState::Recovering && rc != recovering_.end() &&
                                 rc->second.call.worker_id == w->id;
    if (dispatched_here || recovering_here) ack.missing.push_back(id);
  }
  if (instance != config_.instance || !ping_sent_to(*w, seq)) {
    // An answer to a previous daemon's ping, to one long forgotten, or to none at all (a
    // forged seq): acknowledged, and it changes nothing, not even the worker's liveness.
    spdlog::debug("pong {} of worker {} answers no ping sent to it: ignored", seq, w->id);
    reply_worker(peer, std::move(ack));
    return;
  }
  w->last_heard = now;
  bool changed = false, confirmed_now = false;
  if (w->state == WorkerState::Confirming &&
      std::find(w->confirm_seqs.begin(), w->confirm_seqs.end(), seq) != w->confirm_seqs.end()) {
    w->state = WorkerState::Ready;
    registry_.touched(*w);
    changed = confirmed_now = true;
    spdlog::debug("worker {} confirmed: the request socket reaches it", w->id);
  }
  // The silent-loss trap: a request published before ping `seq` must have arrived before it.
  // A request whose answer is missing is not lost on the way to the worker: the worker holds
  // its answer and sends it again (the Ack's `missing`); the WorkRequest is not re-sent.
  std::vector<std::uint64_t> sorted(in_flight);
  sorted.insert(sorted.end(), ack.missing.begin(), ack.missing.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::uint64_t> lost, dropped;
  for (auto id : w->holding) {
    auto it = requests_.find(id);
    if (it == requests_.end()) {
      dropped.push_back(id);
      continue;
    }
    if (seq < it->second.dispatch_seq) continue;
    if (std::binary_search(sorted.begin(), sorted.end(), id)) continue;
    if (it->second.state == RequestState::Dispatched)
      lost.push_back(id);
    else
      dropped.push_back(id);  // orphaned and no longer on the worker: its slot is free
  }
  for (auto id : dropped) {
    w->holding.erase(id);
    auto it = requests_.find(id);
    if (it != requests_.end() && it->second.state == RequestState::Orphaned) erase_request(it);
    changed = true;
  }
  abort_again_if_over(*w, in_flight);
  // Each lost request is sent again at most once per ping (its dispatch_seq moves past every
  // ping sent so far) and at most max_resends times in all; then the worker has lost it.
  std::vector<NodeKey> requeued;
  for (auto id : lost) {
    Request& r = requests_.at(id);
    if (r.resends >= config_.max_resends || items_delivered(r) || chunks_forwarded(r)) {
      spdlog::warn("request still missing from its worker's pong {} after {} re-send(s): treating "
                   "it as lost request_id={} node={} worker_id={}", seq, r.resends, id, r.node->second, w->id);
      actions_.push_back(SendAbort{w->id, id, ErrorCode::WorkerLost, "never acknowledged"});
      w->holding.erase(id);
      NodeKey node = *r.node;
      // A streaming call the worker stopped listing after items reached its caller is not
      // sent again: the worker lost it, and a re-run would repeat the items (PROTOCOL.md §7.8).
      auto why = items_delivered(r) ? std::string("its pongs stopped listing the request")
                                    : fmt::format("it never listed the request in its pongs, {} re-send(s)",
                                                  config_.max_resends);
      if (lose_request(id, w->id, why, now))
        requeued.push_back(std::move(node));
      changed = true;
      continue;
    }
    ++r.resends;
    ++redispatched_;
    std::uint64_t bytes = r.inputs.size() + r.parameters.size();
    if (r.resent_held.empty()) r.resent_held = HeldBytes(&open_resent_bytes_, 0);
    r.resent_held.add(bytes);
    resent_bytes_ += bytes;
    ++r.stats->workspace->counts.redispatched;
    spdlog::warn("request never reached its worker (missing from its pong {}): sending again "
                 "request_id={} node={} worker_id={}", seq, id, r.node->second, w->id);
    send_to_worker(r, *w, now);
  }
  for (auto& key : requeued) dispatch_node(key, now);
  republish_credits(*w);
  republish_chunk_credits(*w);
  if (confirmed_now && w->resume_outputs_on_confirm) resume_outputs_after_reattach(*w);
  if (pong_wants_ack(*w, answered, confirmed_now)) reply_worker(peer, std::move(ack));
  if (changed) {
    if (w->state == WorkerState::Draining && w->holding.empty()) {
      registry_.remove(w->id);
    } else if (w->state == WorkerState::Ready) {
      dispatch_worker_nodes(*w, now);
    }
  }
}

BrokerCore::Request* BrokerCore::dispatched_to(const WorkerEntry& w, std::uint64_t request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end() || !w.holding.contains(request_id) || it->second.state != RequestState::Dispatched)
    return nullptr;
  return &it->second;
}

void BrokerCore::on_progress(TimePoint now, const Peer& peer, const Caller& who,
                             const std::string& worker_id, std::uint64_t request_id,
                             std::uint64_t step, std::uint64_t total, std::string message) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  w->last_heard = now;
  Request* r = dispatched_to(*w, request_id);
  if (r && r->want_progress) reply_client(*r, ProgressBody{step, total, std::move(message)});
  if (!w->no_answer_acks) reply_worker(peer, AckReply{r == nullptr});
}

void BrokerCore::on_result(TimePoint now, const Peer& peer, const Caller& who,
                           const std::string& worker_id, std::uint64_t request_id,
                           Payload outputs) {
  on_answer(now, peer, who, worker_id, request_id, ResultBody{std::move(outputs)});
}

void BrokerCore::on_failure(TimePoint now, const Peer& peer, const Caller& who,
                            const std::string& worker_id, std::uint64_t request_id,
                            ErrorCode code, std::string message) {
  // A worker may say only that its own code failed, that it cannot accept the inputs, or (a
  // worker that forwards calls) what it met downstream (PROTOCOL.md §6, worker_may_send); any
  // other code would make the caller believe the daemon, or the caller itself, was at fault.
  if (!worker_may_send(code)) {
    auto name = error_code_name(code);
    message = name == "UNKNOWN" ? fmt::format("worker sent code {}: {}", static_cast<int>(code), message)
                                : fmt::format("worker sent code {}: {}", name, message);
    code = ErrorCode::WorkerError;
  }
  on_answer(now, peer, who, worker_id, request_id, FailureBody{code, std::move(message)});
}

void BrokerCore::on_answer(TimePoint now, const Peer& peer, const Caller& who,
                           const std::string& worker_id, std::uint64_t request_id,
                           std::variant<ResultBody, FailureBody> answer) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  w->last_heard = now;
  auto it = requests_.find(request_id);
  if (it == requests_.end() || !w->holding.contains(request_id)) {
    // Late, or a duplicate (an answer sent again after the first arrived): dropped.
    if (!w->no_answer_acks) reply_worker(peer, AckReply{true});
    return;
  }
  bool late = it->second.state != RequestState::Dispatched;
  // R8 (PROTOCOL.md §7.9): held while a stream it names is short; the worker sends it again. Its
  // Ack says `late`, which confirms nothing (§7.6): the worker keeps the answer, and a worker
  // that pairs each reply with a message it sent still gets exactly one reply per message.
  if (auto* result = std::get_if<ResultBody>(&answer); result && !late && hold_result(it->second, result->outputs)) {
    if (!w->no_answer_acks) reply_worker(peer, AckReply{true});
    return;
  }
  if (!late) {
    finish_answered(now, it->second, std::move(answer));
  } else {
    spdlog::debug("late answer for request {} from worker {} dropped", request_id, worker_id);
  }
  erase_request(it);
  if (!w->no_answer_acks) reply_worker(peer, AckReply{late});
  release(*w, request_id, now);
}

void BrokerCore::finish_answered(TimePoint now, Request& r, std::variant<ResultBody, FailureBody> answer) {
  r.stats->service.record(us_between(r.dispatched, now));
  finish(now, r, std::move(answer));
}

void BrokerCore::on_detach(TimePoint now, const Peer& peer, const Caller& who,
                           const std::string& worker_id) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  w->last_heard = now;
  reply_worker(peer, AckReply{});
  if (w->state != WorkerState::Draining) {
    w->state = WorkerState::Draining;
    registry_.unindex(*w);
    spdlog::info("worker detaching, {} request(s) to finish worker_id={}", w->holding.size(), w->id);
    note_unserved(now);
  }
  if (w->holding.empty()) {
    spdlog::info("worker detached worker_id={}", w->id);
    registry_.remove(w->id);
  }
}

void BrokerCore::on_bad_worker_message(const Peer& peer, std::string why, ErrorCode code) {
  spdlog::warn("refused a message on the response socket: {}", why);
  reply_worker(peer, RejectedReply{code, std::move(why), false});
}

void BrokerCore::on_identity_revoked(TimePoint now, const std::string& identity) {
  std::vector<std::string> ids;
  for (auto& [id, w] : registry_.workers())
    if (w.owner.identity == identity) ids.push_back(id);
  for (auto& id : ids)
    if (auto* w = registry_.find(id)) worker_gone(*w, now, "its identity was revoked");
  // A revoked client's open requests end now; their workers are told to stop.
  std::vector<std::uint64_t> theirs;
  for (auto& [id, r] : requests_)
    if (r.caller->identity == identity && r.state != RequestState::Orphaned) theirs.push_back(id);
  std::sort(theirs.begin(), theirs.end());
  for (auto id : theirs) {
    Request& r = requests_.at(id);
    FailureBody failure{ErrorCode::PermissionDenied, "the caller's identity was revoked"};
    if (r.state == RequestState::Recovering) {  // no worker holds it yet: its entry in
      finish(now, r, std::move(failure));        // recovering_ aborts it if one comes back
      requests_.erase(id);
    } else if (r.state == RequestState::Queued) {
      remove_from_queue(r);
      finish(now, r, std::move(failure));
      requests_.erase(id);
    } else {
      actions_.push_back(SendAbort{r.worker_id, id, ErrorCode::PermissionDenied, failure.message});
      finish(now, r, std::move(failure));
      r.state = RequestState::Orphaned;
    }
  }
}

// ---- client events ------------------------------------------------------------------------

void BrokerCore::on_submit(TimePoint now, const Peer& peer, const Caller& who, SubmitEvent ev) {
  ++submitted_;
  const std::string lane = client_lane(peer);  // built once: the key, the watches, the bounds
  auto key = client_key(lane, ev.client_request_id);
  if (request_id_taken(key, lane, ev.client_request_id))
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::InvalidRequest,
                             fmt::format("request id {} is already open on this connection",
                                         ev.client_request_id));
  if (shutting_down_)
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::ShuttingDown,
                             "the daemon is shutting down");
  const std::uint64_t bytes = ev.inputs.bytes.size() + ev.parameters.bytes.size();
  // The connection's counts: its limits now, its open call counted in them below (nothing in
  // between adds to or takes from outstanding_, so the iterator stays valid).
  const auto outstanding = outstanding_.find(lane);
  {
    static const Outstanding kNone;
    const Outstanding& c = outstanding == outstanding_.end() ? kNone : outstanding->second;
    if (config_.max_client_outstanding && c.open + c.unread >= config_.max_client_outstanding)
      return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::QueueFull,
          fmt::format("this connection has {} call(s) open and {} repl(ies) unread (limit {}, "
                      "--max-client-outstanding): read your replies",
                      c.open, c.unread, config_.max_client_outstanding));
    if (config_.max_client_outstanding_bytes &&
        c.open_bytes + c.unread_bytes + bytes > config_.max_client_outstanding_bytes)
      return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::QueueFull,
          fmt::format("this connection has {} KiB of open calls and unread replies; this "
                      "request's {} KiB would pass the limit of {} KiB "
                      "(--max-client-outstanding-bytes): read your replies",
                      (c.open_bytes + c.unread_bytes) >> 10, (bytes + 1023) >> 10,
                      config_.max_client_outstanding_bytes >> 10));
  }
  if (!valid_node_name(ev.node))
    return immediate_failure(now, peer, who, ev.client_request_id, "", ErrorCode::InvalidRequest,
                             fmt::format("invalid node name '{}'", ev.node));
  NodeEntry* entry = registry_.node(who.workspace, ev.node);  // (no NodeKey copied per Submit)
  if (!entry || !Registry::served(*entry))
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::NoWorker,
                             fmt::format("no worker serves node '{}'", ev.node));
  if (auto problem = entry->check.check(ev.inputs.bytes, ev.parameters.bytes))
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::InvalidRequest,
                             std::move(*problem));
  WorkerEntry* w = entry->queue.empty() ? registry_.pick(*entry) : nullptr;
  if (!w && entry->queue.size() >= config_.queue_limit)
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::QueueFull,
        fmt::format("every worker serving '{}' is busy and its queue is full ({} waiting)",
                    ev.node, entry->queue.size()));

  if (config_.max_open_bytes && open_bytes() + bytes > config_.max_open_bytes)
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::QueueFull,
        fmt::format("musterd holds {} MiB of payloads for open requests; this request's {} KiB would "
                    "pass the limit of {} MiB (--max-open-bytes)",
                    open_bytes() >> 20, (bytes + 1023) >> 10, config_.max_open_bytes >> 20));

  ev.durable = ev.durable || entry->spec.durable;  // a durable node makes every call durable
  if (ev.durable && ev.stream_window_items)
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::InvalidRequest,
        fmt::format("durable calls do not stream: the call to '{}' asked for items (stream_window_items "
                    "{}) and is durable{}", ev.node, ev.stream_window_items,
                    entry->spec.durable ? " (the node is declared durable)" : ""));
  // A durable call is journaled whole and must be re-runnable from the journal after a restart;
  // a chunked value's bytes are never held by the daemon (docs/DURABILITY.md §1).
  // (Bytes the decoder verified with their message are not verified again: chunked_refs.)
  auto chunked = [](const Payload& p) { return !chunked_refs(p.bytes, p.verified_values).empty(); };
  if (ev.durable && (chunked(ev.inputs) || chunked(ev.parameters)))
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::InvalidRequest,
        fmt::format("a durable call carries its values inline (at most the message limit); chunked "
                    "values are for non-durable calls (the call to '{}' is durable{})", ev.node,
                    entry->spec.durable ? ": the node is declared durable" : ""));
  if (ev.durable && config_.journal_max_bytes && journal_bytes_ + bytes > config_.journal_max_bytes)
    return immediate_failure(now, peer, who, ev.client_request_id, ev.node, ErrorCode::QueueFull,
        fmt::format("journal full: {} of {} bytes held by open and undelivered durable calls; "
                    "this call's {} bytes do not fit (--journal-max-bytes)",
                    journal_bytes_, config_.journal_max_bytes, bytes));

  std::uint64_t timeout_ms = ev.timeout_ms ? ev.timeout_ms
                             : entry->spec.default_timeout_ms
                                 ? entry->spec.default_timeout_ms
                                 : static_cast<std::uint64_t>(config_.default_timeout.count());
  auto id = next_request_id_++;
  if (!first_issued_id_) first_issued_id_ = id;
  Request& r = new_request(id);
  r.id = id;
  r.client = clients_.get(peer);
  r.client_request_id = ev.client_request_id;
  if (!entry->stats)  // (once per node entry: later Submits take it from there, not by hash)
    std::tie(entry->stats_key, entry->stats) = stats_.node(
        NodeKey{who.workspace, ev.node}, [this](const NodeKey& key) { return registry_.node(key) != nullptr; });
  r.node = entry->stats_key;
  r.stats = entry->stats;
  ++r.stats->workspace->counts.submitted;
  r.caller = callers_.get(who);
  r.payload_owner = owner_of_both(ev.inputs, ev.parameters);
  r.inputs = ev.inputs.bytes;
  r.parameters = ev.parameters.bytes;
  r.held = HeldBytes(&open_bytes_, bytes);
  r.submitted = r.waiting_since = now;
  r.deadline = now + Millis(std::min<std::uint64_t>(timeout_ms, 365ull * 24 * 3600 * 1000));
  r.want_progress = ev.want_progress;
  r.payload_frames = ev.payload_frames;
  r.idempotent = entry->spec.idempotent;
  r.trace_id = std::move(ev.trace_id);
  r.stream = ItemStream::open(ev.stream_window_items, ev.stream_window_bytes, config_.streams);
  // A durable call's outputs are journaled with its outcome: they must fit a message, so its
  // worker is given no chunk window (WorkRequest.chunk_window_bytes = 0, PROTOCOL.md §7.9).
  r.chunk_window = ev.durable ? 0 : CallChunks::output_window_for(ev.chunk_window_bytes, config_.streams.max_bytes);
  by_client_.emplace(std::move(key), id);
  count_open(r, +1, lane, outstanding);
  deadlines_.push(r.deadline, id, requests_.size(),
                  [this](std::uint64_t open) { return deadline_counts(open); });
  if (ev.durable) {  // journaled before its Accepted is sent (the loop commits first)
    r.job_id = next_job_id_++;
    // Built in place in the turn's journal ops (a Call moved twice more cost ≈ 600 instructions).
    auto& op = journal_ops_.emplace_back(std::in_place_type<journal::Record>,
                                         std::in_place_type<journal::Submitted>);
    journal::Call& call = std::get<journal::Submitted>(std::get<journal::Record>(op)).call;
    call.job_id = r.job_id;
    call.node = ev.node;
    call.caller = who;
    if (r.trace_id.empty()) {  // "<instance>-<request id>", in one allocation
      call.trace_id.reserve(config_.instance.size() + 21);
      call.trace_id = config_.instance;
      fmt::format_to(std::back_inserter(call.trace_id), "-{}", r.id);
    } else {
      call.trace_id = r.trace_id;
    }
    call.inputs = Payload{r.payload_owner, r.inputs};
    call.parameters = Payload{r.payload_owner, r.parameters};
    call.idempotent = r.idempotent;
    call.submitted = wall(now);
    call.deadline = wall(r.deadline);
    journal_bytes_ += bytes;
    jobs_.opened(r.job_id, OpenJob{id, who.workspace, call.submitted});
  }
  // A resumable one's needs its token (PROTOCOL.md §8.3 C1; a durable call has its job id).
  if (ev.resumable && !r.job_id && resumable_.enabled()) r.call_token = resumable_.open(id);
  // A durable call's caller needs its job id, a resumable one's its token: Accepted is implied.
  if (ev.want_accepted || r.job_id || r.call_token)
    reply_client(r, AcceptedBody{w == nullptr, r.job_id, r.call_token});
  if (w) {
    send_to_worker(r, *w, now);
  } else {
    r.state = RequestState::Queued;
    entry->queue.push_back(queue_lane(peer, *r.caller), id);
    note_call(r, CallPhase::Queued);
  }
}

void BrokerCore::on_cancel(TimePoint now, const Peer& peer, std::uint64_t client_request_id,
                           const std::string* workspace) {
  if (watchers_.cancel(client_lane(peer), client_request_id, workspace, actions_)) return;
  auto k = by_client_.find(client_key(peer, client_request_id));
  if (k == by_client_.end()) {
    spdlog::debug("cancel for request {} which is not open: ignored", client_request_id);
    return;
  }
  auto it = requests_.find(k->second);
  Request& r = it->second;
  if (workspace && r.caller->workspace != *workspace) {
    spdlog::debug("cancel for request {} on behalf of workspace {}: the request is of another workspace, ignored",
                  client_request_id, *workspace);
    return;
  }
  cancel_request(now, it, "cancelled by the client");
}

void BrokerCore::cancel_request(TimePoint now, std::unordered_map<std::uint64_t, Request>::iterator it,
                                const std::string& why, ErrorCode code) {
  Request& r = it->second;
  if (r.state == RequestState::Queued || r.state == RequestState::Recovering) {
    // A Recovering call has no worker yet: its recovering_ entry aborts it if one comes back.
    if (r.state == RequestState::Queued) remove_from_queue(r);
    finish(now, r, FailureBody{code, why});
    erase_request(it);
    return;
  }
  actions_.push_back(SendAbort{r.worker_id, r.id, ErrorCode::Cancelled, why});
  finish(now, r, FailureBody{code, why});
  r.state = RequestState::Orphaned;
}

void BrokerCore::on_bad_client_message(const Peer& peer, std::uint64_t request_id, std::string why,
                                       ErrorCode code) {
  spdlog::warn("refused a message on the client socket: {}", why);
  actions_.push_back(ReplyToClient{peer, request_id, FailureBody{code, std::move(why)}, true});
}

// ---- time -------------------------------------------------------------------------------

void BrokerCore::expire(TimePoint now) {
  auto live = [this](std::uint64_t id) { return deadline_counts(id); };
  deadlines_.drop_stale_front(live);
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    auto id = deadlines_.front().second;
    deadlines_.pop();
    deadlines_.drop_stale_front(live);  // so that next_wakeup() sees a live deadline
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    Request& r = it->second;
    auto waited = ms_between(r.submitted, now);
    if (r.state == RequestState::Queued) {
      remove_from_queue(r);
      finish(now, r, FailureBody{ErrorCode::Timeout,
                            fmt::format("timed out after {} ms waiting for a free worker for '{}'",
                                        waited, r.node->second)});
      erase_request(it);
    } else if (r.state == RequestState::Dispatched) {
      actions_.push_back(SendAbort{r.worker_id, r.id, ErrorCode::Timeout, "deadline passed"});
      finish(now, r, FailureBody{ErrorCode::Timeout,
                            fmt::format("timed out after {} ms; worker '{}' was told to abort",
                                        waited, r.worker_id)});
      r.state = RequestState::Orphaned;
    } else if (r.state == RequestState::Recovering) {
      expire_recovering(now, it);
    }
  }
}

bool BrokerCore::pong_wants_ack(const WorkerEntry& w, const std::vector<std::uint64_t>& answered,
                                bool confirmed_now) {
  return !w.no_answer_acks || !answered.empty() || confirmed_now;
}

Millis BrokerCore::silence_allowed(const WorkerEntry& w) const {
  return config_.ping_interval * (config_.liveness + std::max<std::uint32_t>(w.idle_pong_every, 1) - 1);
}

void BrokerCore::check_liveness(TimePoint now) {
  std::vector<std::pair<std::string, Millis>> dead;
  for (auto& [id, w] : registry_.workers())
    if (auto window = silence_allowed(w); now - w.last_heard > window) dead.emplace_back(id, window);
  for (auto& [id, window] : dead)
    if (auto* w = registry_.find(id))
      worker_gone(*w, now, fmt::format("silent for more than {} ms", window.count()));
}

void BrokerCore::tick(TimePoint now) {
  // The loop itself was late (the process stopped, a long fsync, a long batch): no worker
  // could answer pings that were not sent, and their answers may still wait unread. Every
  // worker gets a fresh liveness window instead of being judged on the daemon's silence.
  if (auto late = now - next_wakeup(); late > config_.ping_interval) {
    spdlog::warn("musterd's loop was {} ms late: every worker gets a fresh liveness window",
                 std::chrono::duration_cast<Millis>(late).count());
    for (auto& [id, w] : registry_.workers()) const_cast<WorkerEntry&>(w).last_heard = now;
  }
  expire(now);
  resumable_.expire(now);
  fail_unserved(now);
  if (now >= reattach_until()) end_reattach_window(now);
  if (now >= next_journal_expire_ && next_job_id_ > 1) {  // only once durable calls were seen
    jobs_.expire(wall(now));  // the same outcomes the journal forgets in this turn
    journal_ops_.emplace_back(journal::ExpireKept{wall(now)});
    next_journal_expire_ = now + config_.journal_expire_interval;
  }
  if (now >= next_ping_at_) {
    remember_ping(broadcast_seqs_, next_ping_seq_);
    actions_.push_back(SendPing{"", next_ping_seq_++});
    next_ping_at_ = now + config_.ping_interval;
    check_liveness(now);
  }
  if (now >= next_confirm_at_) {
    next_confirm_at_ = TimePoint::max();
    for (auto& [id, w] : registry_.workers()) {
      if (w.state != WorkerState::Confirming) continue;
      auto& entry = const_cast<WorkerEntry&>(w);
      if (now >= entry.next_confirm_ping) {
        remember_ping(entry.confirm_seqs, next_ping_seq_);
        actions_.push_back(SendPing{id, next_ping_seq_++});
        entry.next_confirm_ping = now + config_.confirm_interval;
      }
      next_confirm_at_ = std::min(next_confirm_at_, entry.next_confirm_ping);
    }
  }
  if (shutting_down_) check_shutdown(now);
}

TimePoint BrokerCore::next_wakeup() const {
  TimePoint t = std::min(next_ping_at_, next_confirm_at_);
  if (!deadlines_.empty()) t = std::min(t, deadlines_.front().first);
  if (shutting_down_ && !finished_) t = std::min(t, shutdown_deadline_);
  for (auto& [key, at] : unserved_) t = std::min(t, at);
  return std::min(t, reattach_until());
}

// ---- shutdown -----------------------------------------------------------------------------

void BrokerCore::begin_shutdown(TimePoint now) {
  if (shutting_down_) return;
  shutting_down_ = true;
  shutdown_deadline_ = now + config_.shutdown_grace;
  watchers_.end_all(ErrorCode::ShuttingDown, "the daemon is shutting down", actions_);
  std::vector<std::uint64_t> queued;
  std::size_t kept = 0;
  for (auto& [id, r] : requests_)
    if (r.state == RequestState::Queued) queued.push_back(id);
  std::sort(queued.begin(), queued.end());
  for (auto id : queued) {
    auto it = requests_.find(id);
    remove_from_queue(it->second);
    if (it->second.job_id) {  // durable: stays queued in the journal for the next instance
      leave_to_next_instance(it);
      ++kept;
      continue;
    }
    finish(now, it->second, FailureBody{ErrorCode::ShuttingDown,
                                   "the daemon is shutting down; the request never started"});
    erase_request(it);
  }
  spdlog::info("shutting down: {} queued request(s) failed, {} durable one(s) kept in the journal, "
               "waiting up to {} ms for the rest",
               queued.size() - kept, kept, config_.shutdown_grace.count());
  check_shutdown(now);
}

void BrokerCore::check_shutdown(TimePoint now) {
  if (finished_) return;
  std::vector<std::uint64_t> running;
  for (auto& [id, r] : requests_)
    if (r.state == RequestState::Dispatched) running.push_back(id);
  if (!running.empty() && now < shutdown_deadline_) return;
  std::sort(running.begin(), running.end());
  for (auto id : running) {
    auto it = requests_.find(id);
    if (it->second.job_id) {  // durable: left running, unaborted, for the next instance
      leave_to_next_instance(it);
      continue;
    }
    Request& r = it->second;
    actions_.push_back(SendAbort{r.worker_id, id, ErrorCode::ShuttingDown, "the daemon is shutting down"});
    finish(now, r, FailureBody{ErrorCode::ShuttingDown,
                          "the daemon is shutting down; the worker was told to abort"});
    r.state = RequestState::Orphaned;
  }
  finished_ = true;
}

// ---- queries ------------------------------------------------------------------------------

std::vector<NodeSnapshot> BrokerCore::list_nodes(const std::string& workspace) const {
  std::map<NodeKey, std::uint32_t> in_flight;
  for (auto& [id, r] : requests_)
    if (r.state == RequestState::Dispatched) ++in_flight[*r.node];
  std::vector<NodeSnapshot> out;
  for (auto& [key, entry] : registry_.nodes()) {
    if (!workspace.empty() && key.first != workspace) continue;
    auto it = in_flight.find(key);
    out.push_back(node_snapshot(key, entry, it == in_flight.end() ? 0 : it->second));
  }
  return out;
}

NodeSnapshot BrokerCore::node_snapshot(const NodeKey& key, const NodeEntry& entry,
                                       std::uint32_t in_flight) const {
  NodeSnapshot s;
  s.spec = entry.spec;
  s.workspace = key.first;
  s.workers = static_cast<std::uint32_t>(entry.workers.size());
  for (auto* w : entry.workers) s.capacity += w->capacity;
  s.queue_depth = static_cast<std::uint32_t>(entry.queue.size());
  s.in_flight = in_flight;
  return s;
}

std::vector<WorkerSnapshot> BrokerCore::list_workers(TimePoint now,
                                                     const std::string& workspace) const {
  std::vector<WorkerSnapshot> out;
  for (auto& [id, w] : registry_.workers()) {
    if (!workspace.empty() && w.owner.workspace != workspace) continue;
    out.push_back(worker_snapshot(w, now));
  }
  std::sort(out.begin(), out.end(),
            [](auto& a, auto& b) { return a.worker_id < b.worker_id; });
  return out;
}

WorkerSnapshot BrokerCore::worker_snapshot(const WorkerEntry& w, TimePoint now) const {
  WorkerSnapshot s;
  s.worker_id = w.id;
  s.hostname = w.hostname;
  s.sdk = w.sdk;
  s.state = std::string(worker_state_name(w.state));
  s.workspace = w.owner.workspace;
  s.identity = w.owner.identity;
  s.pid = w.pid;
  s.capacity = w.capacity;
  s.in_flight = static_cast<std::uint32_t>(w.holding.size());
  for (auto& n : w.nodes) s.nodes.push_back(n.name);
  s.attached_ms = ms_between(w.attached_at, now);
  s.last_seen_ms = ms_between(w.last_heard, now);
  s.direct = w.direct;
  return s;
}

StatusSnapshot BrokerCore::status(TimePoint now, const std::string& workspace) const {
  StatusSnapshot s;
  s.uptime_ms = ms_between(started_, now);
  auto mine = [&](const std::string& ws) { return workspace.empty() || ws == workspace; };
  for (auto& [id, w] : registry_.workers())
    if (mine(w.owner.workspace)) ++s.workers;
  for (auto& [key, entry] : registry_.nodes()) {
    if (!mine(key.first)) continue;
    if (!entry.workers.empty()) ++s.nodes;
    s.queued += static_cast<std::uint32_t>(entry.queue.size());
  }
  for (auto& [id, r] : requests_) {
    if (!mine(r.caller->workspace)) continue;
    if (r.state == RequestState::Dispatched) ++s.in_flight;
    else if (r.state == RequestState::Recovering) ++s.recovering;
  }
  const auto second = second_of(now);
  const RequestStats* counts = &terminal_;
  s.submitted = submitted_;
  s.redispatched = redispatched_;
  if (!workspace.empty()) {
    static const RequestStats none;
    auto* ws = stats_.find_workspace(workspace);
    counts = ws ? &ws->counts : &none;
    s.submitted = counts->submitted;
    s.redispatched = counts->redispatched;
  }
  s.completed = counts->completed;
  s.failed = counts->failed;
  s.failures_by_code = counts->failures_by_code;
  s.rate_1m = counts->rate_1m(second);
  return s;
}

std::vector<NodeStatsSnapshot> BrokerCore::node_stats(TimePoint now,
                                                      const std::string& workspace) const {
  std::map<NodeKey, NodeStatsSnapshot> by_node;
  auto mine = [&](const NodeKey& key) { return workspace.empty() || key.first == workspace; };
  auto entry = [&](const NodeKey& key) -> NodeStatsSnapshot& {
    auto [it, made] = by_node.try_emplace(key);
    if (made) {
      it->second.workspace = key.first;
      it->second.node = key.second;
    }
    return it->second;
  };
  const auto second = second_of(now);
  stats_.for_each_node([&](const NodeKey& key, const NodeStats& st) {
    if (!mine(key)) return;
    auto& s = entry(key);
    s.completed = st.outcomes.completed;
    s.failed = st.outcomes.failed;
    s.failures_by_code = st.outcomes.failures_by_code;
    s.rate_1m = st.outcomes.rate_1m(second);
    s.queue_wait = st.queue_wait;
    s.service = st.service;
  });
  for (auto& [key, node] : registry_.nodes()) {
    if (!mine(key)) continue;
    auto& s = entry(key);
    s.workers = static_cast<std::uint32_t>(node.workers.size());
    s.queue_depth = static_cast<std::uint32_t>(node.queue.size());
  }
  for (auto& [id, r] : requests_)
    if (r.state == RequestState::Dispatched && mine(*r.node)) ++entry(*r.node).in_flight;
  std::vector<NodeStatsSnapshot> out;
  out.reserve(by_node.size());
  for (auto& [key, s] : by_node) out.push_back(std::move(s));
  return out;
}

std::vector<std::string> BrokerCore::workspace_names() const {
  std::set<std::string> names;
  stats_.for_each_workspace([&](const std::string& name, const WorkspaceStats&) { names.insert(name); });
  for (auto& [id, w] : registry_.workers()) names.insert(w.owner.workspace);
  return {names.begin(), names.end()};
}

std::vector<RecentFailure> BrokerCore::recent_failures(const std::string& workspace) const {
  if (!workspace.empty()) {
    auto* ws = stats_.find_workspace(workspace);
    if (!ws) return {};
    auto mine = ws->recent_failures.newest_first();
    for (auto& f : mine) f.workspace = workspace;
    return mine;
  }
  std::vector<RecentFailure> all;
  stats_.for_each_workspace([&](const std::string& name, const WorkspaceStats& ws) {
    for (auto& f : ws.recent_failures.newest_first()) {
      all.push_back(std::move(f));
      all.back().workspace = name;
    }
  });
  std::stable_sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.at > b.at; });
  if (all.size() > FailureRing::kCapacity) all.resize(FailureRing::kCapacity);
  return all;
}

}  // namespace muster::broker
