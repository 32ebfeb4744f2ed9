// net.hpp — the Boost.Beast/Asio names the bridge and the gateway use, in one place
// (library muster_net, bridge/CMakeLists.txt).
#pragma once

#include <type_traits>
#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace muster::bridge {
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

template <class T>
struct is_ssl_stream : std::false_type {};
template <class T>
struct is_ssl_stream<beast::ssl_stream<T>> : std::true_type {};
template <class T>
inline constexpr bool is_ssl_stream_v = is_ssl_stream<T>::value;
}  // namespace muster::bridge
