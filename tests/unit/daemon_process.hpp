// daemon_process.hpp — a real musterd for one test: a child process with a private runtime
// and data dir, pinging every 300 ms, SIGKILLed and cleaned up when the test ends (also when
// it fails midway). Shared by the unit tests that talk to a daemon over its sockets.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

extern char** environ;

namespace muster::test {

// musterd as a child process in a private runtime dir; SIGKILLed if a test fails midway.
struct DaemonProcess {
  std::filesystem::path dir;
  pid_t pid = -1;

  explicit DaemonProcess(std::vector<std::string> extra_args = {}) {
    char tmpl[] = "/tmp/mst-traps-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::string runtime = "MUSTER_RUNTIME_DIR=" + (dir / "run").string();
    std::vector<std::string> env_strings = {runtime};
    for (char** e = environ; *e; ++e)
      if (std::string_view(*e).rfind("MUSTER_RUNTIME_DIR=", 0) != 0) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string data = (dir / "data").string();
    std::vector<std::string> args = {MUSTER_DAEMON_PATH, "--data-dir", data, "--ping-interval-ms",
                                     "300", "--log-level", "warn"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data()) == 0);
    for (int i = 0; i < 200 && !std::filesystem::exists(dir / "run" / "client.sock"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(std::filesystem::exists(dir / "run" / "client.sock"));
  }
  ~DaemonProcess() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir);
  }
  std::string endpoint(const char* name) const { return "ipc://" + (dir / "run" / name).string() + ".sock"; }
};

}  // namespace muster::test
