// stacks.cpp — see stacks.hpp.
#include "stacks.hpp"

#include <cstring>
#include <fstream>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <zmq.hpp>

#include "muster/client.hpp"
#include "muster/messages.hpp"
#include "postgres_for_test.hpp"  // the private PostgreSQL of system muster-durable-pg

namespace muster::bench {

std::filesystem::path log_path(const std::filesystem::path& dir, std::string_view name) {
  std::filesystem::create_directories(dir / "logs");
  return dir / "logs" / fmt::format("{}.log", name);
}

namespace {

using namespace std::chrono_literals;

std::vector<std::string> worker_endpoint_args(const Endpoints& ep) {
  return {"--request-address", ep.request, "--response-address", ep.response};
}

// ---- muster ---------------------------------------------------------------------------

class MusterDriver : public Driver {
 public:
  MusterDriver(const ClientOptions& o, std::size_t payload, bool durable)
      : client_(o), payload_(payload), inputs_{{"data", Bytes(payload, 0x5a)}} {
    options_.timeout_ms = 60000;
    options_.durable = durable;  // keep_outcome stays false: acked at the next poll/submit
  }
  std::uint64_t submit() override { return client_.submit("echo", inputs_, options_); }
  void poll(int timeout_ms, const std::function<void(std::uint64_t, bool)>& done) override {
    for (auto& ev : client_.poll(std::chrono::milliseconds(timeout_ms))) {
      if (!ev.terminal()) continue;
      bool ok = false;
      if (auto* r = std::get_if<ResultEvent>(&ev.body)) {
        const Value* v = r->outputs.find("data");
        ok = v && v->kind() == ValueKind::Bytes && v->as_bytes().size() == payload_;
        // A durable call that came back without a job id was not journaled: not what is measured.
        if (options_.durable && ev.job_id == 0) {
          ok = false;
          if (!reported_) reported_ = true, fmt::print(stderr, "  muster call was not durable (no job id)\n");
        }
      } else if (!reported_) {
        reported_ = true;
        auto& f = std::get<FailureEvent>(ev.body);
        fmt::print(stderr, "  muster call failed: {}: {}\n", error_code_name(f.code), f.message);
      }
      done(ev.request_id, ok);
    }
  }

 private:
  Client client_;
  std::size_t payload_;
  Map inputs_;
  CallOptions options_;
  bool reported_ = false;
};

class MusterStack : public Stack {
 public:
  MusterStack(Paths p, std::string name, bool raw, JournalKind journal, std::vector<std::string> durable_args)
      : paths_(std::move(p)), name_(std::move(name)), raw_(raw), journal_kind_(journal),
        durable_(journal != JournalKind::None), durable_args_(std::move(durable_args)) {}
  ~MusterStack() override { stop(); }
  std::string name() const override { return name_; }

  void start(const StackOptions& o) override {
    if (o.transport == Transport::Curve && raw_)
      throw Unsupported("the simulated workers (system raw) speak no CURVE");
    if (o.transport == Transport::Curve && !curve_available())
      throw Unsupported("libzmq was built without CURVE");
    opt_ = o;
    ep_ = make_endpoints(o.transport, o.dir, name_);
    const auto data_dir = o.dir / (name_ + "-data");
    // Each musterd also binds its local owner's ipc:// sockets in its runtime dir, whatever the
    // transport: two muster stacks up at once (muster and muster-durable, raw, alt) need one each.
    std::vector<std::string> env = {"MUSTER_RUNTIME_DIR=" + (o.dir / (name_ + "-run")).string()};
    std::string worker_token;
    if (o.transport == Transport::Curve) {
      // As deployed on a LAN: every tcp:// socket is a CURVE server with the daemon's key (made
      // in its data dir on first start), and every worker and the client enroll once with a
      // token minted by the local owner, then connect with their own key pair.
      std::tie(worker_token, client_token_) = mint_tokens(data_dir, env);
      enroll_ = fmt::format("tcp://127.0.0.1:{}", free_tcp_port());
    }
    std::vector<std::string> args = {paths_.musterd.string(), "--data-dir", data_dir.string(),
                                     "--request-address", ep_.request, "--response-address", ep_.response,
                                     "--client-address", ep_.client, "--log-level",
                                     // info: its journal's counts at exit (journal_activity)
                                     durable_ ? "info" : "warn"};
    if (o.transport == Transport::Tcp) args.push_back("--insecure");
    if (journal_kind_ == JournalKind::Sqlite) {
      journal_ = o.dir / fmt::format("{}-{}-journal.db", name_, transport_name(o.transport));
      store_ = "sqlite:" + journal_.string();
    } else if (journal_kind_ == JournalKind::Postgres) {
      store_ = private_postgres_database();
    }
    if (durable_) {
      args.push_back("--journal");
      args.push_back(store_);
      for (auto& a : durable_args_) args.push_back(a);
    }
    if (o.transport == Transport::Curve) {
      args.push_back("--enrollment-address");
      args.push_back(enroll_);
    }
    for (auto& a : o.musterd_args) args.push_back(a);
    daemon_log_ = log_path(o.dir, fmt::format("{}-musterd-{}", name_, transport_name(o.transport)));
    daemon_ = Process("musterd", args, daemon_log_, false, env);
    for (int i = 0; i < o.workers; ++i) {
      std::vector<std::string> w = {paths_.worker.string(), "--worker-id", fmt::format("bench-{}", i),
                                    "--capacity", std::to_string(o.capacity)};
      if (raw_)
        w = {paths_.simworkers.string(), "--count", "1", "--prefix", fmt::format("bench-raw{}", i),
             "--node", "echo", "--echo", "--auto-go", "--capacity", std::to_string(o.capacity)};
      for (auto& a : worker_endpoint_args(ep_)) w.push_back(a);
      if (o.transport == Transport::Tcp && !raw_) w.push_back("--insecure");
      auto wenv = env;
      if (o.transport == Transport::Curve) {
        for (auto& a : {std::string("--data-dir"), (o.dir / fmt::format("{}-worker-{}-keys", name_, i)).string(),
                        std::string("--identity"), fmt::format("bench-{}", i),
                        std::string("--enrollment-address"), enroll_})
          w.push_back(a);
        wenv.push_back("MUSTER_ENROLLMENT_TOKEN=" + worker_token);
      }
      workers_.emplace_back(fmt::format("worker-{}", i), w,
                            log_path(o.dir, fmt::format("{}-worker-{}-{}", name_, transport_name(o.transport), i)),
                            false, wenv);
    }
    wait_ready();
  }

  void stop() override {
    for (auto& w : workers_) w.stop();
    workers_.clear();
    daemon_.stop(5000ms);
  }

  pid_t broker_pid() const override { return daemon_.pid(); }
  std::vector<pid_t> worker_pids() const override {
    std::vector<pid_t> out;
    for (auto& w : workers_) out.push_back(w.pid());
    return out;
  }

  std::unique_ptr<Driver> driver(std::size_t payload) override {
    return std::make_unique<MusterDriver>(client_options(), payload, durable_);
  }

  std::string journal_activity() const override {
    if (!durable_) return {};
    std::ifstream log(daemon_log_);
    std::string line, found;
    constexpr std::string_view kKey = "journal: ";
    while (std::getline(log, line))
      if (auto at = line.find(kKey); at != std::string::npos && line.find("committed", at) != std::string::npos)
        found = line.substr(at + kKey.size());
    return found;
  }

  std::optional<JournalState> journal() const override {
    if (!durable_) return std::nullopt;
    JournalState j;
    j.store = store_;
    if (journal_kind_ == JournalKind::Sqlite) {
      j.path = journal_;
      std::error_code ec;
      j.db_bytes = std::filesystem::file_size(journal_, ec);
      if (ec) j.db_bytes = 0;
      j.wal_bytes = std::filesystem::file_size(journal_.string() + "-wal", ec);
      if (ec) j.wal_bytes = 0;
    }
    try {
      Client c(client_options());
      auto list = c.job_list();
      const auto& jobs = list.is_array() ? list : list.value("jobs", Json::array());
      j.jobs_held = static_cast<std::int64_t>(jobs.size());
    } catch (const std::exception& e) {
      fmt::print(stderr, "  {}: job list failed: {}\n", name_, e.what());
    }
    return j;
  }

 private:
  ClientOptions client_options() const {
    ClientOptions c;
    c.client_address = ep_.client;
    c.insecure = opt_.transport == Transport::Tcp;
    c.grace = 2000ms;
    c.coalesce_submits = true;  // a pipelining client's Submits go in batches (PROTOCOL.md §2.2)
    if (opt_.transport == Transport::Curve) {
      // The first Client enrolls with the token file; later ones reuse the saved identity.
      c.secure.data_dir = (opt_.dir / (name_ + "-client-keys")).string();
      c.secure.name = "bench-client";
      c.secure.role = "client";
      c.secure.enrollment_address = enroll_;
      c.secure.token_file = client_token_.string();
    }
    return c;
  }

  // Starts musterd once on private ipc:// sockets with `data_dir` (which creates the daemon's
  // key pair), mints a worker token (one use per worker) and a client token as its local
  // owner, and stops it again. Returns the worker token and the file holding the client's.
  std::pair<std::string, std::filesystem::path> mint_tokens(const std::filesystem::path& data_dir,
                                                            const std::vector<std::string>& env) {
    auto boot = make_endpoints(Transport::Ipc, opt_.dir, name_ + "-boot");
    Process d("musterd-boot",
              {paths_.musterd.string(), "--data-dir", data_dir.string(), "--request-address", boot.request,
               "--response-address", boot.response, "--client-address", boot.client, "--log-level", "warn"},
              log_path(opt_.dir, name_ + "-musterd-boot"), false, env);
    ClientOptions c;
    c.client_address = boot.client;
    std::string worker_token, client_token, last;
    for (auto until = SteadyClock::now() + 20s; SteadyClock::now() < until && client_token.empty();) {
      if (!d.running()) throw std::runtime_error("musterd (token minting) exited; see its log");
      try {
        Client admin(c);
        worker_token = admin.token_create("worker", 3600 * 1000, static_cast<std::uint32_t>(opt_.workers), "",
                                          "muster-bench workers")
                           .token;
        client_token = admin.token_create("client", 3600 * 1000, 1, "", "muster-bench client").token;
      } catch (const std::exception& e) {
        last = e.what();
        std::this_thread::sleep_for(100ms);
      }
    }
    d.stop(5000ms);
    if (worker_token.empty() || client_token.empty())
      throw std::runtime_error("could not mint enrollment tokens: " + last);
    auto file = opt_.dir / (name_ + "-client-token");
    {
      std::ofstream f(file);
      f << client_token << "\n";
    }
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::replace);
    return {worker_token, file};
  }

  void wait_ready() {
    auto until = SteadyClock::now() + 30s;
    std::string last;
    while (SteadyClock::now() < until) {
      if (!daemon_.running()) throw std::runtime_error("musterd exited; see its log in the run directory");
      try {
        Client c(client_options());
        auto list = c.workers();
        int ready = 0;
        for (auto& w : list)
          if (w["state"] == "ready" && w["worker_id"].get<std::string>().rfind("bench-", 0) == 0) ++ready;
        if (ready == opt_.workers) return;
        last = fmt::format("{} of {} workers ready", ready, opt_.workers);
      } catch (const std::exception& e) {
        last = e.what();
      }
      std::this_thread::sleep_for(100ms);
    }
    throw std::runtime_error("muster stack not ready after 30 s: " + last);
  }

  // A new database on the bench's private PostgreSQL server (started at the first call, fsync
  // on, stopped when the bench exits), as a postgresql:// URI for --journal.
  static std::string private_postgres_database() {
    ::setenv("MUSTER_PG_FSYNC", "1", 1);  // a durable commit waits for the disk, as SQLite's does
    auto& pg = test::TestPostgres::get();
    if (pg.absent()) throw Unsupported(*pg.absent());
    // "host=H port=P user=U dbname=D" -> postgresql:///D?host=H&port=P&user=U
    std::string conninfo = pg.fresh_database(), db, query;
    for (std::size_t at = 0; at < conninfo.size();) {
      auto end = conninfo.find(' ', at);
      if (end == std::string::npos) end = conninfo.size();
      auto pair = conninfo.substr(at, end - at);
      auto eq = pair.find('=');
      if (eq != std::string::npos) {
        if (pair.substr(0, eq) == "dbname") db = pair.substr(eq + 1);
        else query += (query.empty() ? "?" : "&") + pair;
      }
      at = end + 1;
    }
    return "postgresql:///" + db + query;
  }

  Paths paths_;
  std::string name_;
  bool raw_ = false;
  JournalKind journal_kind_ = JournalKind::None;
  bool durable_ = false;
  std::vector<std::string> durable_args_;  // musterd flags of this durable system
  std::filesystem::path daemon_log_;
  std::filesystem::path journal_;  // SQLite: musterd's --journal file
  std::string store_;              // durable: musterd's --journal
  StackOptions opt_;
  Endpoints ep_;
  std::string enroll_;                  // curve: the enrollment endpoint
  std::filesystem::path client_token_;  // curve: file with the client's token
  Process daemon_;
  std::vector<Process> workers_;
};

// ---- baseline -------------------------------------------------------------------------

void apply_curve_client(zmq::socket_t& s, const std::string& server_key) {
  if (server_key.empty()) return;
  auto keys = curve_keypair();
  s.set(zmq::sockopt::curve_serverkey, server_key);
  s.set(zmq::sockopt::curve_publickey, keys.public_key);
  s.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

class BaselineDriver : public Driver {
 public:
  BaselineDriver(const std::string& endpoint, const std::string& server_key, std::size_t payload)
      : buf_(8 + payload, 0x5a) {
    // As the client library sets its DEALER (worker/cpp/client.cpp).
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::immediate, 1);
    socket_.set(zmq::sockopt::sndhwm, 100000);
    socket_.set(zmq::sockopt::rcvhwm, 100000);
    apply_curve_client(socket_, server_key);
    socket_.connect(endpoint);
  }
  std::uint64_t submit() override {
    auto id = next_++;
    std::memcpy(buf_.data(), &id, 8);
    zmq::message_t m(buf_.data(), buf_.size());
    if (!socket_.send(m, zmq::send_flags::dontwait)) {  // no connection (IMMEDIATE) or HWM
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLOUT, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(10000));
      if (!(item.revents & ZMQ_POLLOUT) || !socket_.send(m, zmq::send_flags::dontwait))
        throw std::runtime_error("baseline: cannot send to the forwarder for 10 s (did it die? see its log)");
    }
    return id;
  }
  void poll(int timeout_ms, const std::function<void(std::uint64_t, bool)>& done) override {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms));
    zmq::message_t m;
    while (socket_.recv(m, zmq::recv_flags::dontwait)) {
      while (m.more()) (void)socket_.recv(m, zmq::recv_flags::none);
      std::uint64_t id = 0;
      if (m.size() >= 8) std::memcpy(&id, m.data(), 8);
      done(id, m.size() == buf_.size());
    }
  }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t socket_{ctx_, zmq::socket_type::dealer};
  std::vector<std::uint8_t> buf_;
  std::uint64_t next_ = 1;
};

class BaselineStack : public Stack {
 public:
  explicit BaselineStack(Paths p) : paths_(std::move(p)) {}
  ~BaselineStack() override { stop(); }
  std::string name() const override { return "baseline"; }

  void start(const StackOptions& o) override {
    opt_ = o;
    ep_ = make_endpoints(o.transport, o.dir, "baseline");
    std::vector<std::string> args = {paths_.forwarder.string(), "--client-address", ep_.client,
                                     "--request-address", ep_.request, "--response-address", ep_.response};
    server_key_.clear();
    if (o.transport == Transport::Curve) {
      if (!curve_available()) throw Unsupported("libzmq was built without CURVE");
      auto keys = curve_keypair();
      server_key_ = keys.public_key;
      args.push_back("--curve-secret");
      args.push_back(keys.secret_key);
    }
    forwarder_ = Process("forwarder", args,
                         log_path(o.dir, fmt::format("forwarder-{}", transport_name(o.transport))));
    for (int i = 0; i < o.workers; ++i) {
      std::vector<std::string> w = {paths_.worker.string(), "--baseline", "--worker-id",
                                    fmt::format("base-{}", i)};
      for (auto& a : worker_endpoint_args(ep_)) w.push_back(a);
      if (!server_key_.empty()) {
        w.push_back("--curve-server-key");
        w.push_back(server_key_);
      }
      workers_.emplace_back(fmt::format("base-worker-{}", i), w,
                            log_path(o.dir, fmt::format("baseline-worker-{}-{}", transport_name(o.transport), i)));
    }
    wait_ready();
  }

  void stop() override {
    for (auto& w : workers_) w.stop();
    workers_.clear();
    forwarder_.stop();
  }

  pid_t broker_pid() const override { return forwarder_.pid(); }
  std::vector<pid_t> worker_pids() const override {
    std::vector<pid_t> out;
    for (auto& w : workers_) out.push_back(w.pid());
    return out;
  }
  std::unique_ptr<Driver> driver(std::size_t payload) override {
    return std::make_unique<BaselineDriver>(ep_.client, server_key_, payload);
  }

 private:
  void wait_ready() {
    zmq::context_t ctx{1};
    zmq::socket_t s{ctx, zmq::socket_type::dealer};
    s.set(zmq::sockopt::linger, 0);
    apply_curve_client(s, server_key_);
    s.connect(ep_.client);
    auto until = SteadyClock::now() + 30s;
    std::uint32_t ready = 0;
    while (SteadyClock::now() < until) {
      if (!forwarder_.running()) throw std::runtime_error("forwarder exited; see its log");
      s.send(zmq::str_buffer("?"), zmq::send_flags::dontwait);
      zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      zmq::message_t m;
      while (s.recv(m, zmq::recv_flags::dontwait))
        if (m.size() == 4) std::memcpy(&ready, m.data(), 4);
      if (ready == static_cast<std::uint32_t>(opt_.workers)) return;
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error(fmt::format("baseline not ready after 30 s ({} of {} workers)", ready, opt_.workers));
  }

  Paths paths_;
  StackOptions opt_;
  Endpoints ep_;
  std::string server_key_;
  Process forwarder_;
  std::vector<Process> workers_;
};

}  // namespace

std::unique_ptr<Stack> make_muster_stack(const Paths& paths, std::string name, bool raw_workers, JournalKind journal,
                                         std::vector<std::string> durable_args) {
  return std::make_unique<MusterStack>(paths, std::move(name), raw_workers, journal, std::move(durable_args));
}
std::unique_ptr<Stack> make_baseline_stack(const Paths& paths) { return std::make_unique<BaselineStack>(paths); }

}  // namespace muster::bench
