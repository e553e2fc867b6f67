// The one translation unit that compiles Boost.Beast and Boost.URL
// (BOOST_BEAST_SEPARATE_COMPILATION is a public definition of pqmcp_transport).
#include <boost/beast/src.hpp>
#include <boost/url/src.hpp>
