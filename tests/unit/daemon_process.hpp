// daemon_process.hpp — a real musterd for one test: a child process with a private runtime
// and data dir, pinging every 300 ms, SIGKILLed and cleaned up when the test ends (also when
// it fails midway). Shared by the unit tests that talk to a daemon over its sockets, and
// spawn_musterd for those that only watch it start or refuse to.
#pragma once

#include <fcntl.h>
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

// Starts musterd (MUSTER_DAEMON_PATH) with `args`, the runtime dir `runtime_dir` and the rest
// of this process's environment; its stderr goes to `stderr_path` if given. Returns its pid.
inline pid_t spawn_musterd(const std::filesystem::path& runtime_dir, std::vector<std::string> args,
                           const std::filesystem::path& stderr_path = {}) {
  std::vector<std::string> env_strings = {"MUSTER_RUNTIME_DIR=" + runtime_dir.string()};
  for (char** e = environ; *e; ++e)
    if (std::string_view(*e).rfind("MUSTER_RUNTIME_DIR=", 0) != 0) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  args.insert(args.begin(), MUSTER_DAEMON_PATH);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  ::posix_spawn_file_actions_init(&fa);
  if (!stderr_path.empty())
    ::posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  int spawned = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&fa);
  REQUIRE(spawned == 0);
  return pid;
}

// musterd as a child process in a private runtime dir; SIGKILLed if a test fails midway.
struct DaemonProcess {
  std::filesystem::path dir;
  pid_t pid = -1;

  explicit DaemonProcess(std::vector<std::string> extra_args = {}) {
    char tmpl[] = "/tmp/mst-traps-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::vector<std::string> args = {"--data-dir", (dir / "data").string(), "--ping-interval-ms",
                                     "300", "--log-level", "warn"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    pid = spawn_musterd(dir / "run", std::move(args));
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
