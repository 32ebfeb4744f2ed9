// baseline_worker.hpp — the bare-libzmq worker loop of muster-bench-forwarder's protocol
// (forwarder.cpp), shared by muster-bench-worker --baseline and muster-bench-stream-worker
// --baseline: SUB on its topic + DEALER, ["H", id] until the forwarder publishes ["C"] on the
// topic, then ["R", id], then every request [topic, client routing id, payload...] is handed to
// the caller's answer function, which sends the reply on the DEALER.
// Owns: the sockets (set as the C++ SDK sets them), the hello/confirm handshake, the loop until
// SIGINT or SIGTERM.
// Must never: do work per request beyond reading it and calling `answer` (it is the floor).
#pragma once

#include <functional>
#include <string>

#include <zmq.hpp>

namespace muster::bench {

// `rid` is the client's routing id (send it first, with sndmore), `request` the last frame of
// the request.
using BaselineAnswer = std::function<void(zmq::message_t& rid, zmq::message_t& request, zmq::socket_t& dealer)>;

// Runs until SIGINT/SIGTERM; returns the process's exit code (0). `broadcast`: also subscribe to
// "b:" (musterd's broadcast topic, as a muster worker does). A non-empty `curve_server_key`
// puts CURVE on both sockets with a fresh key pair.
int run_baseline_worker(const std::string& id, const std::string& request_address,
                        const std::string& response_address, const std::string& curve_server_key,
                        bool broadcast, const BaselineAnswer& answer);

}  // namespace muster::bench
