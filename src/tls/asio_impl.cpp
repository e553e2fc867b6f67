// The one translation unit that compiles Boost.Asio and Boost.Asio SSL
// (BOOST_ASIO_SEPARATE_COMPILATION is a public definition of pqmcp_tls).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
