// The one translation unit that compiles Boost.Asio and Boost.Asio SSL
// (BOOST_ASIO_SEPARATE_COMPILATION is a public definition of pqmcp_tls).
//
// GCC 12 at -O2 reports -Wnull-dereference false positives inside Asio's
// scheduler and executors (see asio.hpp); silenced for Asio's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#pragma GCC diagnostic pop
