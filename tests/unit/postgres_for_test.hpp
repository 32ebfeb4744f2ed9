// postgres_for_test.hpp — a private PostgreSQL server for the unit tests of the PostgreSQL
// journal: started at first use by tests/integration/postgres_server.py (initdb in a temp dir
// as a user that is not root, a unix socket only), stopped when the test binary exits — or
// dies: the helper stops it when its stdin closes. Each test gets a database of its own.
// Absent PostgreSQL binaries make available() false with the reason (the tests say so and
// skip); tools/lib/setup.sh installs them, so CI runs these tests.
#pragma once

#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace muster::test {

class TestPostgres {
 public:
  // The server of this run, started at the first call. Throws when it cannot be started
  // (binaries present but broken): a failure, not a skip.
  static TestPostgres& get() {
    static TestPostgres server;
    return server;
  }
  // Why the PostgreSQL tests are skipped; nullopt when the server runs.
  const std::optional<std::string>& absent() const { return absent_; }

  // The conninfo of a new, empty database.
  std::string fresh_database() {
    std::string name = std::to_string(++databases_);
    name.insert(0, 1, 't');  // (not "t" + …: GCC 12 warns falsely, -Wrestrict)
    exec_admin("CREATE DATABASE " + name);
    return base_conninfo_ + " dbname=" + name;
  }
  const std::string& base_conninfo() const { return base_conninfo_; }

  // Runs SQL on database `conninfo` (to break a journal on purpose); throws on failure.
  static void sql(const std::string& conninfo, const std::string& statement) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    std::string error;
    if (PQstatus(c) != CONNECTION_OK) {
      error = PQerrorMessage(c);
    } else {
      PGresult* r = PQexec(c, statement.c_str());
      const auto st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) error = PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(c);
    if (!error.empty()) throw std::runtime_error("sql: " + statement + ": " + error);
  }

  ~TestPostgres() {
    if (to_helper_ >= 0) ::close(to_helper_);  // the helper stops the server and exits
    if (helper_ <= 0) return;
    for (int i = 0; i < 600; ++i) {  // up to 30 s
      if (::waitpid(helper_, nullptr, WNOHANG) == helper_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(helper_, SIGKILL);  // its server gets SIGQUIT (PR_SET_PDEATHSIG)
    ::waitpid(helper_, nullptr, 0);
  }

 private:
  TestPostgres() {
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) throw std::runtime_error("pipe failed");
    helper_ = ::fork();
    if (helper_ < 0) throw std::runtime_error("fork failed");
    if (helper_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[0]);
      ::close(in[1]);
      ::close(out[0]);
      ::close(out[1]);
      ::execlp("python3", "python3", MUSTER_POSTGRES_HELPER, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_helper_ = in[1];
    const std::string line = read_line(out[0]);
    ::close(out[0]);
    if (line.starts_with("absent ")) {
      absent_ = line.substr(7);
    } else if (line.starts_with("ready ")) {
      base_conninfo_ = line.substr(6);
      const auto db = base_conninfo_.find(" dbname=");
      if (db != std::string::npos) base_conninfo_.resize(db);
    } else {
      throw std::runtime_error("cannot start the test PostgreSQL (" MUSTER_POSTGRES_HELPER "): " + line);
    }
  }

  static std::string read_line(int fd) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    char ch = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      if (::read(fd, &ch, 1) != 1) break;
      if (ch == '\n') return line;
      line += ch;
    }
    return line.empty() ? std::string("no answer from the helper") : line;
  }

  void exec_admin(const std::string& statement) { sql(base_conninfo_ + " dbname=postgres", statement); }

  pid_t helper_ = -1;
  int to_helper_ = -1;
  std::optional<std::string> absent_;
  std::string base_conninfo_;
  int databases_ = 0;
};

}  // namespace muster::test
