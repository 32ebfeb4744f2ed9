// secure_connect.cpp — see secure_connect.hpp.
#include "muster/secure_connect.hpp"

#include <unistd.h>

#include <cctype>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/endpoints.hpp"
#include "muster/align.hpp"
#include "muster/frames.hpp"
#include "muster/local_identity.hpp"
#include "muster/messages.hpp"
#include "muster/runtime_dir.hpp"
#include "muster/timestamp.hpp"
#include "muster/token_source.hpp"

namespace muster {

namespace {

std::string host_of(std::string_view tcp_endpoint) {
  auto rest = tcp_endpoint.substr(6);  // after tcp://
  auto colon = rest.rfind(':');
  return std::string(colon == std::string_view::npos ? rest : rest.substr(0, colon));
}

// The host's name in the characters the daemon accepts ([A-Za-z0-9._-]; others become '-').
std::string local_hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  std::string out = buf;
  for (auto& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
  return out;
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

}  // namespace

void apply_curve(zmq::socket_t& socket, const CurveClientKeys& keys) {
  socket.set(zmq::sockopt::curve_serverkey, keys.server_key);
  socket.set(zmq::sockopt::curve_publickey, keys.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

std::optional<CurveClientKeys> secure_connect_keys(const SecureOptions& o,
                                                   const std::vector<std::string>& endpoints) {
  std::string first_tcp;
  for (auto& ep : endpoints)
    if (is_tcp(ep) && first_tcp.empty()) first_tcp = ep;
  if (first_tcp.empty() || o.insecure) return std::nullopt;

  std::string data_dir = o.data_dir.empty() ? default_data_dir().string() : o.data_dir;
  std::string name = o.name.empty() ? o.role : o.name;
  auto sources = keys::token_source_from_env(
      o.token_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(o.token_file));
  auto found = keys::find_enrollment_token(sources);
  keys::EnrollmentPlan plan;
  try {
    plan = keys::plan_enrollment(data_dir, name,
                                 found ? std::optional<std::string>(found->token) : std::nullopt);
  } catch (const keys::DaemonKeyMismatch& e) {
    throw EnrollmentError(wire::ErrorCode::PermissionDenied, e.what());
  } catch (const keys::NotEnrolled& e) {
    throw EnrollmentError(wire::ErrorCode::PermissionDenied, fmt::format(
        "{} — to connect to {} this {} must enroll first: get a token with `muster token create "
        "--role {}` on the daemon's host and put it in MUSTER_ENROLLMENT_TOKEN or a file given "
        "with --enrollment-token-file",
        e.what(), first_tcp, o.role, o.role));
  }
  CurveClientKeys keys{plan.keys.public_key, plan.keys.secret_key, plan.daemon_public_key};
  if (!plan.needs_enrollment()) return keys;

  std::string address = o.enrollment_address.empty()
                            ? fmt::format("tcp://{}:{}", host_of(first_tcp),
                                          default_tcp_port(SocketRole::Enrollment))
                            : o.enrollment_address;
  spdlog::info("enrolling as '{}' ({}) at {} with the token from {}", name, o.role, address,
               found ? found->source : "?");
  zmq::context_t ctx(1);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  apply_curve(dealer, keys);
  dealer.connect(address);
  flatbuffers::FlatBufferBuilder fbb(512);
  // An empty name lets the token's label name the identity (as the Python and TS SDKs do).
  auto req = wire::CreateEnrollRequestDirect(fbb, plan.token->c_str(), keys.public_key.c_str(),
                                             o.role.c_str(), o.name.c_str(), local_hostname().c_str());
  fbb.Finish(req, wire::EnrollRequestIdentifier());
  dealer.send(zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize()), zmq::send_flags::none);
  zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, o.enroll_timeout);
  zmq::message_t reply;
  if (!(item.revents & ZMQ_POLLIN) || !dealer.recv(reply, zmq::recv_flags::dontwait))
    throw EnrollmentError(wire::ErrorCode::Unavailable, fmt::format(
        "no answer from the enrollment endpoint {} within {} ms: the daemon is down or not "
        "listening there, or the token was minted by another daemon (its key did not match)",
        address, o.enroll_timeout.count()));
  align_payload(reply);
  auto* resp = read_enroll_response(bytes_of(reply));
  if (!resp)
    throw EnrollmentError(wire::ErrorCode::BadMessage,
                          "the enrollment endpoint answered with an invalid message");
  if (!resp->ok())
    throw EnrollmentError(resp->code() == wire::ErrorCode::None ? wire::ErrorCode::PermissionDenied
                                                                : resp->code(),
                          fmt::format("enrollment refused: {}", str(resp->error())));
  keys::record_enrollment(data_dir, name, plan, str(resp->identity_id()), str(resp->role()),
                          str(resp->workspace()), str(resp->name()), keys::Clock::now());
  spdlog::info("enrolled as identity {} (role {}, workspace {}); saved in {}", str(resp->identity_id()),
               str(resp->role()), str(resp->workspace()), data_dir);
  return keys;
}

}  // namespace muster
