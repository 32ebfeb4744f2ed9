// cmd_job.cpp — `muster job get|ls|cancel`: durable calls of the caller's workspace, fetched
// after their caller went away (docs/DURABILITY.md §6). `job get` of a finished job prints its
// outcome as `muster call` would, then acknowledges it (musterd forgets it) unless --keep.
#include <chrono>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "cli.hpp"
#include "muster/messages.hpp"
#include "table.hpp"

namespace muster::cli {

namespace {

struct JobArgs {
  std::uint64_t id = 0;
  bool json = false, keep = false, wait = false;
  Client::JobListPage page;  // ls: --limit, --after
};

// "3.2 s", "5 min", "2 h" since a wall time in ms (0: "-").
std::string age_of(std::uint64_t wall_ms) {
  if (!wall_ms) return "-";
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch()).count();
  double s = now > static_cast<std::int64_t>(wall_ms) ? (now - static_cast<std::int64_t>(wall_ms)) / 1000.0 : 0;
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 7200) return fmt::format("{:.0f} min", s / 60);
  return fmt::format("{:.1f} h", s / 3600);
}

// One line for an open job, or a finished one seen through its JobInfo.
std::string describe(const Json& j) {
  auto state = j.value("state", "");
  auto line = fmt::format("job {} {} (node {}, submitted {} ago", j.value("job_id", 0ull), state,
                          j.value("node", ""), age_of(j.value("submitted_ms", 0ull)));
  if (!j.value("worker_id", "").empty()) line += fmt::format(", worker {}", j.value("worker_id", ""));
  if (j.value("attempts", 0u)) line += fmt::format(", attempt {}", j.value("attempts", 0u));
  if (state == "finished") line += fmt::format(", {}", j.value("code", ""));
  return line + ")";
}

bool finished_outcome(const Json& j) { return j.contains("outputs") || j.contains("message"); }

// Prints a finished job's outcome as `muster call` does; its exit status.
int print_outcome(const Json& j, bool json) {
  if (json) std::cout << j.dump(2) << "\n";
  if (j.contains("outputs")) {
    if (!json) std::cout << j["outputs"].dump() << "\n";
    return code(Exit::Ok);
  }
  auto name = j.value("code", "INTERNAL");
  std::cerr << "error: " << name << ": " << j.value("message", "") << "\n";
  return code(exit_for(error_code_from_name(name).value_or(wire::ErrorCode::Internal)));
}

int job_get(Client& client, const JobArgs& a) {
  Json j = client.job_get(a.id);
  while (a.wait && !finished_outcome(j)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    j = client.job_get(a.id);
  }
  if (!finished_outcome(j)) {
    if (a.json) std::cout << j.dump(2) << "\n";
    else std::cerr << describe(j) << "\n";
    return code(Exit::Pending);
  }
  int status = print_outcome(j, a.json);
  std::cout.flush();
  if (!a.keep) client.job_ack({a.id});  // printed: musterd may forget it now
  return status;
}

int job_list(Client& client, const JobArgs& a) {
  Json page = client.job_list_page(a.page);
  const Json& jobs = page["jobs"];
  // musterd lists at most --limit (its maximum: 1000) at a time: say where the next page starts.
  if (page.value("more", false) && !jobs.empty())
    std::cerr << fmt::format("more jobs follow: muster job ls --after {}\n", jobs.back().value("job_id", 0ull));
  if (a.json) {
    std::cout << jobs.dump(2) << "\n";
    return code(Exit::Ok);
  }
  Table t({">JOB", "STATE", "NODE", "WORKER", ">ATTEMPTS", ">AGE", "OUTCOME"});
  for (auto& j : jobs)
    t.row({std::to_string(j.value("job_id", 0ull)), j.value("state", ""), j.value("node", ""),
           j.value("worker_id", "").empty() ? "-" : j.value("worker_id", ""),
           std::to_string(j.value("attempts", 0u)), age_of(j.value("submitted_ms", 0ull)),
           j.value("code", "-")});
  t.print(std::cout);
  return code(Exit::Ok);
}

int job_cancel(Client& client, const JobArgs& a) {
  Json j = client.job_cancel(a.id);
  if (a.json) std::cout << j.dump(2) << "\n";
  if (j.value("code", "") == "CANCELLED")
    std::cerr << fmt::format("job {} cancelled\n", a.id);
  else
    std::cerr << fmt::format("job {} had already finished ({}); nothing to cancel\n", a.id, j.value("code", ""));
  return code(Exit::Ok);
}

}  // namespace

void add_job_commands(Cli& cli) {
  auto a = std::make_shared<JobArgs>();
  auto* job = cli.app.add_subcommand("job", "Durable calls of your workspace: fetch, list, cancel")
                  ->require_subcommand(1);
  job->footer("A durable call (`muster call --durable`, or a node declared durable) gets a job id "
              "that outlives its caller and musterd restarts. Jobs of other workspaces are "
              "\"no such job\".");

  auto* get = job->add_subcommand("get", "Fetch a durable call: its outcome once finished, else its state");
  get->add_option("ID", a->id, "Job id (printed by `muster call --durable`, listed by `muster job ls`)")
      ->required();
  get->add_flag("--json", a->json, "Print JSON: the job's state, or {job_id, state, outputs|code+message}");
  get->add_flag("--keep", a->keep, "Do not acknowledge the outcome: musterd keeps it (until --result-ttl-ms)");
  get->add_flag("--wait", a->wait, "Wait until the job has finished");
  get->footer("A finished job prints its outputs as JSON on stdout (or `error: CODE: message` on stderr, "
              "with the exit status `muster call` would have), then musterd forgets it: a second "
              "`job get` says \"no such job\". A job not finished yet prints its state on stderr "
              "and exits 6 (pending).");
  cli.on(get, [&cli, a] { return job_get(cli.client(), *a); });

  auto* ls = job->add_subcommand("ls", "List the durable calls musterd holds: open ones, and finished ones not acknowledged");
  ls->add_flag("--json", a->json, "Print JSON (the jobs as an array)");
  ls->add_option("--limit", a->page.limit, "At most this many jobs (0: musterd's maximum, 1000)");
  ls->add_option("--after", a->page.after_job_id, "Only jobs with an id above this one (the next page)");
  ls->footer("Oldest first. musterd answers at most 1000 jobs at a time (or --limit): when more "
             "follow, stderr says `more jobs follow: muster job ls --after ID`.");
  cli.on(ls, [&cli, a] { return job_list(cli.client(), *a); });

  auto* cancel = job->add_subcommand("cancel", "Cancel a durable call (its worker is told to abort)");
  cancel->add_option("ID", a->id, "Job id")->required();
  cancel->add_flag("--json", a->json, "Print the job as JSON after the cancel");
  cancel->footer("Its outcome becomes CANCELLED, kept for `muster job get` like any outcome. A job "
                 "that had finished already is left as it was (exit 0, said on stderr).");
  cli.on(cancel, [&cli, a] { return job_cancel(cli.client(), *a); });
}

}  // namespace muster::cli
