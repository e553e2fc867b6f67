#include "pqmcp/tls/listener.hpp"

#include "asio_detail.hpp"
#include "pqmcp/core/descriptor.hpp"

namespace pqmcp::tls {

namespace asio = boost::asio;
using asio::ip::tcp;

tl::expected<std::uint16_t, std::string> listen_on(tcp::acceptor& acceptor, const std::string& host,
                                                   std::uint16_t port) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) {
        return tl::unexpected("not a numeric address: " + host);
    }
    const tcp::endpoint endpoint(address, port);
    const std::string where = detail::endpoint_string(endpoint);
    if (acceptor.open(endpoint.protocol(), ec);
        ec || (acceptor.set_option(tcp::acceptor::reuse_address(true), ec), ec) ||
        (acceptor.bind(endpoint, ec), ec) ||
        (acceptor.listen(asio::socket_base::max_listen_connections, ec), ec)) {
        return tl::unexpected(where + ": " + ec.message());
    }
    keep_from_children(acceptor.native_handle());
    const std::uint16_t bound = acceptor.local_endpoint(ec).port();
    if (ec) {
        return tl::unexpected(where + ": " + ec.message());
    }
    return bound;
}

}  // namespace pqmcp::tls
